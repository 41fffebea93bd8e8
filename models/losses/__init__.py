"""Task-loss weighting strategies, independent of the model (chosen per run in TrainConfig)."""
