"""privacy-checks: prove a privacy policy's promises against a live system."""

__version__ = "0.1.0"
