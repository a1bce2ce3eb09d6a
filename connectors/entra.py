"""entra connector (parsers registered on import)."""
