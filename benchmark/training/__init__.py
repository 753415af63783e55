"""Classifiers: model factory, recipes, losses, training loop, inference."""
