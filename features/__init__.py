"""Feature spec, TFT preprocessing, synthetic impression logs and dataset adapters.

Imports no other project package (docs/architecture.md).
"""
