"""Built-in defenses: each module registers entries with a decorator; loaded as benchmark.defenses."""
