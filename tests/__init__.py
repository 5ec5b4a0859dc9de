"""modelreg's test suite (a package, so `bench/` can import `tests.servers`)."""
