"""vault connector (parsers registered on import)."""
