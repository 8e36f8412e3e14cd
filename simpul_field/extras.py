"""What each verb needs beyond an agent-only install, checked before the verb starts.

A verb calls require() first, so a missing package is one line naming the extra, and
never an ImportError halfway through (after a box was registered, say).
"""

import importlib
from typing import Iterable, Optional

from simpul_field.errors import MissingExtraError

EXTRA = "field"
# Import names of the optional packages simpul_field uses (see pyproject's `field` extra);
# the CLI turns an ImportError of one of these that slipped past require() into one line.
OPTIONAL = frozenset({"httpx", "segno", "intelhex", "tqdm", "esptool", "serial",
                      "cryptography", "tomli"})


def missing_message(verb: str, missing: Iterable[str]) -> str:
    return (f"'{verb}' needs the {EXTRA} extra: pip install 'simpul[{EXTRA}]' "
            f"(missing: {', '.join(missing)})")


def require(verb: str, *modules: str, note: Optional[str] = None) -> None:
    """Import every module now; MissingExtraError names all that cannot be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(missing_message(verb, missing) + (f"; {note}" if note else ""))


def optional_module(exc: ImportError) -> Optional[str]:
    """The optional package an ImportError is about, or None (then it is a real bug)."""
    top = (exc.name or "").split(".")[0]
    return top if top in OPTIONAL else None
