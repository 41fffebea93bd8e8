"""Reusable Keras layers shared by every model of the zoo (one implementation each)."""
