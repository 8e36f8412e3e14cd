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
    report_native()
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


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def report_native() -> None:
    """Log what tracemalloc cannot see: RSS, threads, and SQLite's own page caches and
    buffers (sqlite3_memory_used, and its high-water mark)."""
    import threading

    sqlite_now = sqlite_peak = None
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        lib.sqlite3_memory_highwater.restype = ctypes.c_int64
        lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
        sqlite_now = lib.sqlite3_memory_used() / 2**20
        sqlite_peak = lib.sqlite3_memory_highwater(0) / 2**20
    except (OSError, AttributeError):
        pass
    rss = _status_kb("VmRSS")
    log.warning("memory report: RSS %s MB, %d threads, SQLite %s MB (peak %s MB)",
                "?" if rss is None else f"{rss / 1024:.1f}", threading.active_count(),
                "?" if sqlite_now is None else f"{sqlite_now:.2f}",
                "?" if sqlite_peak is None else f"{sqlite_peak:.2f}")
