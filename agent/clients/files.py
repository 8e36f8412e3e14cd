"""Counting over a capture file: open it (mmap, no copy), walk frames, feed the counter."""

import mmap
from typing import Dict, Union

from agent.clients.counter import ClientCounter
from agent.clients.errors import CaptureError
from agent.clients.pcap import DLT_EN10MB, DLT_IEEE802_11_RADIO, Buffer, classify, frames


def count_buffer(buf: Buffer, counter: ClientCounter) -> Dict[str, float]:
    """Feed every frame of a capture buffer to `counter`; returns frame statistics."""
    total = matched = 0
    first = last = 0.0
    see = counter.see
    for ts, linktype, off, length in frames(buf):
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
    return {"frames": total, "frames_matched": matched, "first_ts": first, "last_ts": last}


def count_file(path: Union[str, "object"], counter: ClientCounter) -> Dict[str, float]:
    """Count a pcap/pcapng file; CaptureError (one line, with the path) when unreadable."""
    try:
        with open(str(path), "rb") as handle:
            try:
                buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # an empty file cannot be mapped
                raise CaptureError(f"{path}: empty file, not a capture") from exc
            try:
                return count_buffer(buf, counter)
            except CaptureError as exc:
                raise CaptureError(f"{path}: {exc}") from exc
            finally:
                buf.close()
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror}") from exc
