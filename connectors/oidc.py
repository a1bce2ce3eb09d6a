"""oidc connector (parsers registered on import)."""
