"""Multi-stage procedures (control, request, barrier, verdict) that the suites share."""
