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


_baseline: Optional[Any] = None


def report_growth(limit: int = 15) -> None:
    """With PYTHONTRACEMALLOC set: the first call keeps a snapshot, each later one logs
    the source lines whose live allocations grew most since it (SIGUSR2 in `run`)."""
    import tracemalloc

    global _baseline
    if not tracemalloc.is_tracing():
        log.warning("memory report: start the agent with PYTHONTRACEMALLOC=5")
        return
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    if _baseline is None:
        _baseline = snap
        log.warning("memory report: baseline kept (%.1f MB traced)",
                    tracemalloc.get_traced_memory()[0] / 2**20)
        return
    for stat in snap.compare_to(_baseline, "traceback")[:limit]:
        where = " <- ".join(f"{f.filename}:{f.lineno}" for f in stat.traceback[:4])
        log.warning("memory report: %+.1f KB in %+d blocks at %s", stat.size_diff / 1024,
                    stat.count_diff, where)
