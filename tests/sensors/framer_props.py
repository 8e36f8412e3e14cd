"""Shared helpers for framer property tests: walk a stream with a pure decode."""

from typing import Any, Callable, List, Tuple

Walk = List[Tuple[int, int, Any, Any]]  # (start, used, frame, error)


def walk(decode: Callable[[bytes], Any], data: bytes) -> Walk:
    """Decode `data` to the end, as a port reader would; (start, used, frame, error)."""
    out: Walk = []
    pos = 0
    while pos < len(data):
        result = decode(data[pos:])
        assert result.used >= 0
        if result.used == 0:
            break
        assert pos + result.used <= len(data)
        out.append((pos, result.used, result.frame, result.error))
        pos += result.used
    return out


def found_at(steps: Walk, start: int) -> Any:
    for at, _used, frame, _err in steps:
        if at == start and frame is not None:
            return frame
    return None


def overlapped_by_other_frame(steps: Walk, start: int) -> bool:
    """A frame (valid by its checksum) decoded from noise that runs into `start`."""
    return any(frame is not None and at < start < at + used for at, used, frame, _ in steps)
