"""Check bodies the suites call: each judges one promise and raises its outcome."""
