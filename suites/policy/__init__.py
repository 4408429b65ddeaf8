"""privacy-checks suites: policy."""
