"""The version every CLI prints: the installed distribution's, else the source tree's.

One distribution (`simpul`) carries all the parts, so all four CLIs ask the same
question; the caller passes its own package's __version__ for a checkout never installed.
"""


def installed_version(fallback: str, distribution: str = "simpul") -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return fallback
