"""A recording HTTP/1.x backend on 127.0.0.1, scripted per path.

It runs its own asyncio loop in a daemon thread. Every request it receives is recorded with its
exact raw bytes (`RecordedRequest`); the answer comes from a `Reply` looked up by exact target,
then by path without the query, then `default`. Connections are kept alive the way an HTTP/1.1
origin does (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`), so
`connections` counts how often a proxy reused one.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


@dataclass
class Reply:
    """What the backend answers.

    `headers` are sent exactly as listed (duplicates, hop-by-hop ...). Unless `raw_headers` is
    true, Content-Length is added when neither it nor Transfer-Encoding is listed and `chunks` is
    None; with `chunks` the body is sent chunked (`Transfer-Encoding: chunked` added).
    `action`: None (answer), "close" (close without answering), "reset" (RST without answering),
    "close_after" (answer, then close: a close-delimited body when no length is given).
    `delay`: seconds to wait before answering. `raw`: exact bytes to send instead of all that.
    A 101 switches the connection to echo mode.
    """
    status: int = 200
    reason: str = ""
    headers: Headers = field(default_factory=lambda: [(b"Content-Type", b"text/plain")])
    body: bytes = b"ok\n"
    chunks: list[bytes] | None = None
    raw_headers: bool = False
    action: str | None = None
    delay: float = 0.0
    raw: bytes | None = None
    version: bytes = b"HTTP/1.1"

    def encode(self, head: bool = False) -> bytes:
        """The answer's bytes; `head`: an answer to HEAD (headers as for GET, no body)."""
        if self.raw is not None:
            return self.raw
        reason = self.reason or REASONS.get(self.status, "Unknown")
        out = [b"%s %d %s\r\n" % (self.version, self.status, reason.encode())]
        names = {n.lower() for n, _ in self.headers}
        headers = list(self.headers)
        if not self.raw_headers:
            if self.chunks is not None and b"transfer-encoding" not in names:
                headers.append((b"Transfer-Encoding", b"chunked"))
            elif (self.chunks is None and self.action != "close_after" and self.status >= 200
                  and not names & {b"content-length", b"transfer-encoding"}):
                headers.append((b"Content-Length", b"%d" % len(self.body)))
        out += [n + b": " + v + b"\r\n" for n, v in headers]
        out.append(b"\r\n")
        if head:
            return b"".join(out)
        if self.chunks is not None:
            out += [b"%x\r\n%s\r\n" % (len(c), c) for c in self.chunks if c]
            out.append(b"0\r\n\r\n")
        elif self.status >= 200:
            out.append(self.body)
        return b"".join(out)


REASONS = {100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created",
           204: "No Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
           400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class RecordedRequest:
    raw: bytes              # exactly what arrived: head + body as framed on the wire
    head: bytes             # request line and headers, through the blank line
    method: bytes
    target: bytes
    version: bytes
    headers: Headers
    body: bytes             # decoded (de-chunked)
    chunked: bool
    connection: int         # index of the TCP connection it came on

    def header(self, name: bytes) -> bytes | None:
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)

    def header_names(self) -> list[bytes]:
        return [n.lower() for n, _ in self.headers]


class BadRequest(Exception):
    pass


class Backend:
    """Usage: `with Backend() as b: b.route("/x", Reply(...)); ... b.requests`."""

    def __init__(self, name: str = "backend", port: int = 0, ssl=None):
        self.name = name
        self.port = port
        self.ssl = ssl          # an ssl.SSLContext: serve HTTPS
        self.routes: dict[bytes, Reply] = {}
        self.default = Reply(body=b"ok " + name.encode() + b"\n")
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ scripting
    def route(self, target: str | bytes, reply: Reply) -> None:
        self.routes[target.encode() if isinstance(target, str) else target] = reply

    def reply_for(self, target: bytes) -> Reply:
        if target in self.routes:
            return self.routes[target]
        return self.routes.get(target.split(b"?", 1)[0], self.default)

    def mark(self) -> int:
        """Position in `requests`, for `since(mark)`."""
        return len(self.requests)

    def since(self, mark: int) -> list[RecordedRequest]:
        return self.requests[mark:]

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "Backend":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self.port = sock.getsockname()[1]
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, sock=sock, ssl=self.ssl))
            ready.set()
            self._loop.run_forever()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"backend-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "Backend":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ serving
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        try:
            while True:
                req = await read_request(reader, conn)
                if req is None:
                    return
                self.requests.append(req)
                reply = self.reply_for(req.target)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.action == "close":
                    return
                if reply.action == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                writer.write(reply.encode(head=req.method == b"HEAD"))
                await writer.drain()
                if reply.status == 101:
                    await echo(reader, writer)
                    return
                if reply.action == "close_after" or not wants_keepalive(req):
                    return
        except (ConnectionError, BadRequest, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def wants_keepalive(req: RecordedRequest) -> bool:
    conn = (req.header(b"connection") or b"").lower()
    if req.version == b"HTTP/1.1":
        return b"close" not in conn
    return b"keep-alive" in conn


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def read_request(reader: asyncio.StreamReader, conn: int) -> RecordedRequest | None:
    """Read one request; None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise BadRequest(e.partial) from None
        return None
    lines = head[:-4].split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ")
    except ValueError:
        raise BadRequest(lines[0]) from None
    headers = [parse_header(line) for line in lines[1:]]
    names = {n.lower(): v for n, v in headers}
    raw, body, chunked = head, b"", False
    if b"chunked" in names.get(b"transfer-encoding", b"").lower():
        chunked = True
        wire, body = await read_chunked(reader)
        raw += wire
    elif b"content-length" in names:
        body = await reader.readexactly(int(names[b"content-length"]))
        raw += body
    return RecordedRequest(raw=raw, head=head, method=method, target=target, version=version,
                           headers=headers, body=body, chunked=chunked, connection=conn)


def parse_header(line: bytes) -> tuple[bytes, bytes]:
    name, sep, value = line.partition(b":")
    if not sep:
        raise BadRequest(line)
    return name, value.strip(b" \t")


async def read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    wire, body = [], []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        wire.append(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the blank line
                line = await reader.readuntil(b"\r\n")
                wire.append(line)
                if line == b"\r\n":
                    return b"".join(wire), b"".join(body)
        data = await reader.readexactly(size + 2)
        wire.append(data)
        body.append(data[:-2])
