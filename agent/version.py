"""The version a CLI prints: the installed distribution's, else the source tree's."""

from agent import __version__


def installed_version(distribution: str = "simpul") -> str:
    # importlib.metadata is in the standard library from Python 3.8.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return __version__
