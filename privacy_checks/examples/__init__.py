"""Examples shipped with the package: a Python adapter for the built-in demo (docs/profile.md)."""
