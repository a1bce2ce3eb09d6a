"""kong connector (parsers registered on import)."""
