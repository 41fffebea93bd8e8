"""Serving signatures, export and model checks. Imports only ``features`` (docs/architecture.md)."""
