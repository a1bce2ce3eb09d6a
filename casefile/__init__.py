"""The SQLite case file: schema, ingest, credential identity, audit chain. Knows no vendor and no widget."""
