"""Built-in attacks: each module registers entries with a decorator; loaded as benchmark.attacks."""
