"""aws connector (parsers registered on import)."""
