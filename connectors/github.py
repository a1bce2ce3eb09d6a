"""github connector (parsers registered on import)."""
