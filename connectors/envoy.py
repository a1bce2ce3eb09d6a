"""envoy connector (parsers registered on import)."""
