"""haproxy connector (parsers registered on import)."""
