"""The fleet's error base: every exception fleet_api raises on purpose derives from
FleetError, so a caller can tell the fleet's refusals from a bug. Some keep ValueError
or LookupError as a second base where callers catch those."""


class FleetError(Exception):
    """Base of every fleet_api exception."""
