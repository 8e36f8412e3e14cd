"""Simpul agent: runs on each point's box. Imports nothing of the fleet side."""

__version__ = "0.1.0"
__all__ = ["__version__"]
