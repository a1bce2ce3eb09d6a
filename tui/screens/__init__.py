"""The console's screens, one module each. Every screen reads the case through `casefile` (and acts through
`playbooks` / `connectors`) in workers, never on the UI thread, and renders untrusted text literally."""
