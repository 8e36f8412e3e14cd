"""CCTV camera reachability: an RTSP OPTIONS request per camera, with a timeout.

Sample config:

    [[collectors]]
    type = "rtsp"
    name = "cctv"
    timeout_s = 2.0
    interval_s = 30.0
    cameras = [
        { name = "gate", url = "rtsp://192.168.10.20:554/stream1" },
        { name = "park", url = "rtsp://192.168.10.21/h264" },
    ]

The request (RFC 2326 section 10.1) is the cheapest thing a camera must answer; it
needs no credentials and starts no stream:

    OPTIONS rtsp://192.168.10.20:554/stream1 RTSP/1.0\\r\\n
    CSeq: 1\\r\\n
    User-Agent: simpul-agent\\r\\n
    \\r\\n

A camera is `ok` when it answers `RTSP/1.0 <code>` with the same CSeq and a code below
500 (401 counts: the camera is up and wants credentials for streams). Anything else is
`unavailable` with the reason: refused, timed out, not RTSP, server error. Credentials
in a URL are never sent with OPTIONS and never appear in a reason.
Metrics: `camera_<name>_rtt_ms` for each camera that answered, and `<name>_cameras_up`.
"""

import socket
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from agent.collectors.background import BackgroundProbe
from agent.collectors.base import Accumulator
from agent.errors import CollectorError
from simpul_wire.config.probes import RtspConfig

MAX_REPLY = 16 * 1024


@dataclass(frozen=True)
class RtspReply:
    code: int
    reason: str
    headers: Dict[str, str]


def public_url(url: str) -> str:
    """The URL without user:password, for requests and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def build_options(url: str, cseq: int) -> bytes:
    return (f"OPTIONS {public_url(url)} RTSP/1.0\r\nCSeq: {cseq}\r\n"
            "User-Agent: simpul-agent\r\n\r\n").encode("ascii")  # fmt: skip


def reply_length(data: bytes) -> int:
    """Bytes of a complete reply head in data; 0 means not complete yet."""
    end = data.find(b"\r\n\r\n")
    return end + 4 if end >= 0 else 0


def parse_reply(data: bytes, cseq: int) -> RtspReply:
    """Parse a reply head; CollectorError names what is wrong with it."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("RTSP/") or not status[1].isdigit():
        raise CollectorError(f"not an RTSP reply: {lines[0][:40]!r}")
    headers = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    if headers.get("cseq") != str(cseq):
        raise CollectorError(f"reply CSeq {headers.get('cseq')!r} does not match {cseq}")
    return RtspReply(int(status[1]), status[2] if len(status) > 2 else "", headers)


def options(url: str, timeout_s: float, cseq: int = 1) -> Tuple[RtspReply, float]:
    """Send OPTIONS, read the reply head; (reply, round trip in ms)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout_s
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(build_options(url, cseq))
            data = b""
            while not reply_length(data):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    raise CollectorError(f"{where} closed the connection without a reply")
                data += chunk
                if len(data) > MAX_REPLY:
                    raise CollectorError(f"{where} sent more than {MAX_REPLY} bytes of header")
    except socket.timeout as exc:
        raise CollectorError(f"{where} gave no RTSP reply within {timeout_s:g} s") from exc
    except socket.gaierror as exc:
        raise CollectorError(f"cannot resolve {host}: {exc.strerror}") from exc
    except ConnectionRefusedError as exc:
        raise CollectorError(f"{where} refused the connection") from exc
    except ConnectionResetError as exc:  # closed with our request unread: same thing
        raise CollectorError(f"{where} closed the connection without a reply") from exc
    except OSError as exc:
        raise CollectorError(f"{where}: {exc.strerror or exc}") from exc
    return parse_reply(data, cseq), (time.monotonic() - start) * 1000.0


CameraResult = Tuple[Optional[float], Optional[str]]  # (rtt ms, or the reason it is down)


class RtspCollector:
    stream = "health"

    def __init__(self, config: RtspConfig) -> None:
        self.name = config.name
        self._config = config
        self._cseq = 0
        self._probe: BackgroundProbe[Dict[str, CameraResult]] = BackgroundProbe(
            config.name, self.probe_once, config.interval_s
        )

    def probe_once(self) -> Dict[str, CameraResult]:
        out: Dict[str, CameraResult] = {}
        for cam in self._config.cameras:
            self._cseq += 1
            try:
                reply, rtt = options(cam.url, self._config.timeout_s, self._cseq)
            except CollectorError as exc:
                out[cam.name] = (None, str(exc))
                continue
            if reply.code >= 500:
                out[cam.name] = (None, f"camera answered {reply.code} {reply.reason}".strip())
            else:
                out[cam.name] = (rtt, None)
        return out

    def refresh(self) -> None:
        """Probe now, in the calling thread (for `doctor` and tests); gather reports it."""
        self._probe.run_once()

    def start(self) -> None:
        self._probe.start()

    def gather(self, acc: Accumulator) -> None:
        results = self._probe.report(acc, self.name)
        if results is None:
            for cam in self._config.cameras:
                acc.status(f"camera_{cam.name}", "unavailable", "no probe has finished yet")
            return
        up = 0
        for name, (rtt, reason) in results.items():
            if rtt is None:
                acc.status(f"camera_{name}", "unavailable", reason)
            else:
                up += 1
                acc.add(f"camera_{name}_rtt_ms", rtt)
                acc.status(f"camera_{name}", "ok")
        acc.add(f"{self.name}_cameras_up", up)
        acc.status(self.name, "ok")

    def close(self) -> None:
        self._probe.close()
