"""nginx connector (parsers registered on import)."""
