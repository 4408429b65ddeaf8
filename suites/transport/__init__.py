"""privacy-checks suites: transport."""
