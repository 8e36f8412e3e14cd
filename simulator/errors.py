"""The simulator's error base: what `simpul-sim` refuses on purpose derives from SimError,
so its CLI prints the message in one line and a bug still shows its traceback."""


class SimError(Exception):
    """The simulator cannot go on; the message says why."""


class ScenarioError(SimError):
    """A scenario file that cannot be used; the message names the field."""
