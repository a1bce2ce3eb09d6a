"""okta connector (parsers registered on import)."""
