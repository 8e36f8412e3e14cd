"""Give freed heap memory back to the kernel (glibc's malloc_trim), on Linux boxes.

glibc keeps freed memory in the process for reuse. Start-up (pydantic building every
model's validator) and a replay after an outage free megabytes that a box at 1 Hz never
needs again, and RSS is what the box's budget counts. Measured effect in
docs/benchmarks.md (agent footprint and the one-hour soak).
"""

import ctypes
import logging
from typing import Any, Optional

log = logging.getLogger("simpul.memory")

_libc: Optional[Any] = None
_tried = False


def trim() -> None:
    """malloc_trim(0); nothing where there is no glibc (musl, macOS)."""
    global _libc, _tried
    if not _tried:
        _tried = True
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            log.debug("no glibc malloc_trim here")
    if _libc is not None:
        _libc.malloc_trim(0)
