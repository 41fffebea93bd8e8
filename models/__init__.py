"""Trainer entry point (``models.trainer.run_fn``), model zoo and shared blocks.

Imports ``features`` and ``serving`` only; blocks never import model modules (docs/architecture.md).
"""
