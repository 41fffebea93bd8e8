"""TFX pipeline construction, runners and the ``msmt`` command line. Wires every other package."""
