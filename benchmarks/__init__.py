"""stanch's speed harness: `python -m benchmarks` (see benchmarks/README.md)."""
