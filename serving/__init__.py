"""Serving signatures, export and model checks. Imports only ``features`` (DESIGN.md section 2)."""
