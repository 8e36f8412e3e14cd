"""Alerts: the rules the worker evaluates, and the signed webhooks that deliver them."""
