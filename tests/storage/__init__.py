"""The storage backends: one contract suite over every backend, and each backend's own tests."""
