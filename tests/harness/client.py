"""A raw-socket HTTP/1.x client: send exact bytes, read responses with nginx's framing rules.

`Connection(port)` keeps one socket: `send()` raw bytes (pipelining is just sending several
requests at once), then `read_response(method)` once per request. A response is complete at its
Content-Length, at the end of its chunked body, or (no length) when the server closes; 1xx (except
101), 204, 304 and answers to HEAD have no body. Interim 1xx responses are collected on the final
response (`interim`) unless `read_response(interim=True)` asks for the 1xx itself.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


@dataclass
class Response:
    version: bytes
    status: int
    reason: bytes
    headers: Headers
    body: bytes = b""
    framing: str = "none"              # "length" | "chunked" | "close" | "none"
    raw: bytes = b""                   # head + body exactly as received
    trailers: Headers = field(default_factory=list)
    interim: list["Response"] = field(default_factory=list)

    def header(self, name: str | bytes) -> bytes | None:
        name = (name.encode() if isinstance(name, str) else name).lower()
        return next((v for n, v in self.headers if n.lower() == name), None)

    def header_all(self, name: str | bytes) -> list[bytes]:
        name = (name.encode() if isinstance(name, str) else name).lower()
        return [v for n, v in self.headers if n.lower() == name]

    @property
    def status_line(self) -> bytes:
        return b"%s %d %s" % (self.version, self.status, self.reason)


class ProtocolError(Exception):
    pass


class Connection:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 3.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    # ------------------------------------------------------------ io
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take_until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            if not self._fill():
                raise ProtocolError(f"connection closed before {sep!r}; got {self.buf[:200]!r}")
        out, self.buf = self.buf[:i + len(sep)], self.buf[i + len(sep):]
        return out

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError(f"connection closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _take_all(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def read_exactly(self, n: int) -> bytes:
        """Raw bytes (a tunnel's payload, say)."""
        return self._take(n)

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """True when the server closes the connection (after any unread bytes) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
        except socket.timeout:
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ responses
    def read_response(self, method: str = "GET", interim: bool = False) -> Response:
        interims = []
        while True:
            resp = self._read_one(method)
            if interim or not (100 <= resp.status < 200) or resp.status == 101:
                resp.interim = interims
                return resp
            interims.append(resp)

    def _read_one(self, method: str) -> Response:
        head = self._take_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ProtocolError(f"bad status line {status_line!r}")
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else b""
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip(b" \t")))
        resp = Response(version, status, reason, headers)
        self._read_body(resp, method)
        resp.raw = head + resp.raw
        return resp

    def _read_body(self, resp: Response, method: str) -> None:
        if method.upper() == "HEAD" or resp.status < 200 or resp.status in (204, 304):
            return
        te = (resp.header("transfer-encoding") or b"").lower()
        cl = resp.header("content-length")
        if b"chunked" in te:
            resp.framing = "chunked"
            wire, resp.body, resp.trailers = self._read_chunked()
            resp.raw = wire
        elif cl is not None:
            resp.framing = "length"
            resp.body = resp.raw = self._take(int(cl))
        else:
            resp.framing = "close"
            resp.body = resp.raw = self._take_all()

    def _read_chunked(self) -> tuple[bytes, bytes, Headers]:
        wire, body, trailers = [], [], []
        while True:
            line = self._take_until(b"\r\n")
            wire.append(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            data = self._take(size + 2)
            wire.append(data)
            body.append(data[:-2])
        while (line := self._take_until(b"\r\n")) != b"\r\n":
            wire.append(line)
            name, _, value = line.rstrip(b"\r\n").partition(b":")
            trailers.append((name, value.strip()))
        wire.append(line)
        return b"".join(wire), b"".join(body), trailers


def build_request(method: str = "GET", target: str = "/", headers: Headers | None = None,
                  body: bytes | None = None, version: str = "HTTP/1.1",
                  host: bytes | None = b"example.test") -> bytes:
    """Exact request bytes; Host first (unless None), then `headers` as given, then Content-Length
    when a body is given without any framing header."""
    lines = [f"{method} {target} {version}".encode()]
    headers = list(headers or [])
    if host is not None:
        headers.insert(0, (b"Host", host))
    names = {n.lower() for n, _ in headers}
    if body is not None and not names & {b"content-length", b"transfer-encoding"}:
        headers.append((b"Content-Length", b"%d" % len(body)))
    lines += [n + b": " + v for n, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def exchange(port: int, raw: bytes, method: str = "GET", count: int = 1,
             timeout: float = 3.0) -> list[Response]:
    """Send `raw` on a fresh connection and read `count` responses."""
    with Connection(port, timeout=timeout) as conn:
        conn.send(raw)
        return [conn.read_response(method) for _ in range(count)]


def request(port: int, method: str = "GET", target: str = "/", **kw) -> Response:
    return exchange(port, build_request(method, target, **kw), method)[0]
