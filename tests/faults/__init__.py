"""Issue 12: stanch under faults (network faults from real peers through a fault-injecting proxy)."""
