"""Built-in datasets: each module registers entries with a decorator; loaded as benchmark.datasets."""
