"""The built-in demo target: MediaPRO's training service as a real HTTPS server with switchable flaws."""

from .flaws import FLAWS, parse_flaws
from .server import DemoConfig, DemoServer

__all__ = ["FLAWS", "DemoConfig", "DemoServer", "parse_flaws"]
