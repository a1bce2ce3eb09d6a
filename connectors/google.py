"""google connector (parsers registered on import)."""
