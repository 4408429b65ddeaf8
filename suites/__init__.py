"""privacy-checks suites: suites."""
