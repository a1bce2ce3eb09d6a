"""salesforce connector (parsers registered on import)."""
