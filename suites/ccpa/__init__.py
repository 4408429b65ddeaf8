"""Suite package: lets ccpa/ and gdpr/ hold test modules of the same name (e.g. test_response_deadlines.py)."""
