"""Simpul fleet service: registry, ingest, twin, tiers, commands, alerts, dashboard."""

__version__ = "0.1.0"
__all__ = ["__version__"]
