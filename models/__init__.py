"""Built-in models: each module registers entries with a decorator; loaded as benchmark.models."""
