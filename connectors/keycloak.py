"""keycloak connector (parsers registered on import)."""
