"""A small RTSP responder: answers OPTIONS (and nothing else) like an IP camera would.

Behaviours, to test the camera probe against each way a camera fails:

    ok       RTSP/1.0 200 OK with CSeq and Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN
    status   the same with another code (--code 401, 503, ...)
    silent   accepts the connection and never answers (a hung camera)
    close    accepts and closes at once
    http     answers HTTP/1.1 200 OK (a web server on the camera's port)

Runs on asyncio in the calling thread (`serve`) or in a background thread (`Responder`,
for tests in-process).
"""

import asyncio
import threading
from typing import List, Optional

MODES = ("ok", "status", "silent", "close", "http")
PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 454: "Session Not Found",
           500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def reply_for(request: bytes, mode: str, code: int) -> Optional[bytes]:
    """The reply to one request head, or None to say nothing."""
    lines = request.decode("latin-1").split("\r\n")
    method = lines[0].split(" ", 1)[0]
    cseq = next((ln.split(":", 1)[1].strip() for ln in lines[1:]
                 if ln.lower().startswith("cseq:")), "0")  # fmt: skip
    if mode == "http":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    if mode == "ok":
        code = 200
    if method != "OPTIONS" and code < 300:
        code = 405
    reason = REASONS.get(code, "Method Not Allowed" if code == 405 else "Status")
    extra = f"Public: {PUBLIC}\r\n" if code == 200 else ""
    if code == 401:
        extra = 'WWW-Authenticate: Digest realm="simpul-sim", nonce="0"\r\n'
    return (f"RTSP/1.0 {code} {reason}\r\nCSeq: {cseq}\r\nServer: simpul-sim\r\n"
            f"{extra}\r\n").encode("latin-1")  # fmt: skip


class RtspServer:
    def __init__(self, mode: str = "ok", code: int = 200) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.code = code
        self.requests = 0
        self._held: List[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "close":
            writer.close()
            return
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                self.requests += 1
                if self.mode == "silent":
                    self._held.append(writer)
                    await reader.read()  # hold the connection until the client goes
                    return
                reply = reply_for(head, self.mode, self.code)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()


class Responder:
    """An RtspServer on 127.0.0.1 in a background thread; `port` once started."""

    def __init__(self, mode: str = "ok", code: int = 200, host: str = "127.0.0.1") -> None:
        self.server = RtspServer(mode, code)
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: Optional[asyncio.Event] = None
        self._thread = threading.Thread(target=self._run, name="rtsp-sim", daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        srv = await asyncio.start_server(self.server.handle, self.host, 0)
        self.port = srv.sockets[0].getsockname()[1]
        self._ready.set()
        async with srv:
            await self._stop.wait()

    def __enter__(self) -> "Responder":
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("RTSP responder did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


async def serve(host: str, port: int, mode: str, code: int) -> None:
    server = RtspServer(mode, code)
    srv = await asyncio.start_server(server.handle, host, port)
    bound = srv.sockets[0].getsockname()
    print(f"rtsp://{bound[0]}:{bound[1]}/ mode={mode}", flush=True)
    async with srv:
        await srv.serve_forever()
