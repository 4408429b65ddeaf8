"""pytest hooks for privacy-checks (filled in below)."""
