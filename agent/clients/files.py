"""Counting over a capture file: open it (mmap, no copy), walk frames, feed the counter."""

import mmap
from typing import Any, Dict, List, Optional, Union

from agent.clients.counter import ClientCounter
from agent.clients.errors import CaptureError, CaptureTruncated
from agent.clients.pcap import (
    DLT_EN10MB,
    DLT_IEEE802_11_RADIO,
    Buffer,
    SkippedInterface,
    classify,
    frames,
)


def count_buffer(buf: Buffer, counter: ClientCounter, truncated_ok: bool = False) -> Dict[str, Any]:
    """Feed every frame of a capture buffer to `counter`; returns frame statistics.

    `frames` counts the frames decoded; frames of pcapng interfaces with a link type not
    decoded are in `frames_skipped` and `skipped_interfaces`. A buffer that ends inside
    a record raises CaptureTruncated, unless `truncated_ok`: then the frames before the
    cut are counted and `truncated` is True, with `cut` saying where: `byte` (where the
    incomplete record starts), `after_frame` (frames before it), `file_size`, `reason`.
    """
    total = matched = 0
    first = last = 0.0
    see = counter.see
    skipped: List[SkippedInterface] = []
    cut: Optional[CaptureTruncated] = None
    try:
        for ts, linktype, off, length in frames(buf, skipped):
            if not total:
                first = ts
            last = ts
            total += 1
            # Cheap rejections inline, since most frames are bulk traffic: saves a call each.
            if linktype == DLT_EN10MB and length >= 24:
                if buf[off + 12] == 0x86 or (
                    buf[off + 12] == 0x08 and buf[off + 13] == 0x00 and buf[off + 23] != 17
                ):
                    continue  # IPv6, or IPv4 that is not UDP
            elif linktype == DLT_IEEE802_11_RADIO and length >= 8:
                p = off + (buf[off + 2] | (buf[off + 3] << 8))
                if p < off + length and buf[p] != 0x40:
                    continue  # not a probe request
            hit = classify(buf, off, length, linktype)
            if hit is not None:
                matched += 1
                see(hit[0], hit[1], ts)
    except CaptureTruncated as exc:
        if not truncated_ok:
            raise
        cut = exc
    stats: Dict[str, Any] = {
        "frames": total,
        "frames_matched": matched,
        "first_ts": first,
        "last_ts": last,
        "frames_skipped": sum(s.frames for s in skipped),
        "skipped_interfaces": [s.asdict() for s in skipped],
        "truncated": cut is not None,
    }
    if cut is not None:
        stats["cut"] = {
            "byte": cut.byte,  # where the incomplete record starts
            "after_frame": cut.frames,  # the whole frames before it, all counted
            "file_size": len(buf),  # where the file ends: the cut
            "reason": str(cut),
        }
    return stats


def count_file(
    path: Union[str, "object"], counter: ClientCounter, truncated_ok: bool = False
) -> Dict[str, Any]:
    """Count a pcap/pcapng file; CaptureError (one line, with the path) when unreadable.

    A file cut short inside a record raises CaptureTruncated unless `truncated_ok`
    (see count_buffer); a file that is not a capture at all always raises.
    """
    try:
        with open(str(path), "rb") as handle:
            try:
                buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # an empty file cannot be mapped
                raise CaptureError(f"{path}: empty file, not a capture") from exc
            try:
                return count_buffer(buf, counter, truncated_ok)
            except CaptureTruncated as exc:
                raise CaptureTruncated(f"{path}: {exc}", exc.byte, exc.frames) from exc
            except CaptureError as exc:
                raise CaptureError(f"{path}: {exc}") from exc
            finally:
                buf.close()
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror}") from exc
