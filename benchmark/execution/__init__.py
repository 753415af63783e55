"""Running the matrix: plan, store, code versions, executors, records."""
