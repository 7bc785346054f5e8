"""The PROXY protocol header (v1 text, v2 binary) on a `listen ... proxy_protocol` socket.

Sans-IO part: `parse(data) -> (status, header, consumed, message)`, nginx's
ngx_proxy_protocol_read (src/core/ngx_proxy_protocol.c). status is one of
  NEED_MORE  the bytes so far are a valid beginning; read more (nginx wants the whole header
             in its first read; ngate also accepts a header split over several segments)
  DONE       `consumed` bytes were the header; `header` is a ProxyHeader, or None when the
             header carries no addresses (v1 UNKNOWN, v2 LOCAL, other families/transports)
  BROKEN     not a PROXY header: `message` is nginx's error log text ("broken header: ...")
             or "" where nginx closes without a word.

Accept path (ProxyProtocolAcceptor, a Protocol until it hands over): the header is read first
(client_header_timeout); then the transport goes to the HTTP connection with the bytes that
followed the header. On an ssl listen the TLS acceptor (tls.py) reads it from the raw socket
before TLS, as nginx does: peeked, and exactly the header consumed. The header's
addresses are $proxy_protocol_addr/_port and $proxy_protocol_server_addr/_port, and what
`real_ip_header proxy_protocol` reads. $remote_addr stays the proxy's unless realip says so.
"""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from ngate.observability import error_log

NEED_MORE, DONE, BROKEN = "need_more", "done", "broken"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 1024            # nginx reads the header within its first client_header_buffer_size
_ADDR_CHARS = frozenset(b"0123456789abcdefABCDEF:.")


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    src_addr: str
    src_port: int
    dst_addr: str
    dst_port: int


def parse(data: bytes):
    """-> (status, ProxyHeader | None, consumed, message)."""
    n = len(data)
    if data[:min(n, 12)] == V2_SIGNATURE[:min(n, 12)]:
        if n < 16:
            return NEED_MORE, None, 0, ""
        return _parse_v2(data)
    return _parse_v1(data)


def _broken(data: bytes):
    return BROKEN, None, 0, f'broken header: "{data.decode("latin-1")}"'


def _parse_v1(data: bytes):
    n = len(data)
    if data[:min(n, 6)] != b"PROXY "[:min(n, 6)]:
        return _broken(data)
    more = (NEED_MORE, None, 0, "") if n < V1_MAX else _broken(data)
    if n < 8:
        return more
    p = 6
    if data[p:p + 7] == b"UNKNOWN"[:max(0, min(7, n - p))] and n - p < 7:
        return more
    if data[p:p + 7] == b"UNKNOWN":
        end = data.find(b"\r\n", p + 7)
        if end < 0:
            return more
        return DONE, None, end + 2, ""
    if n - p < 5:
        return more if b"TCP4 "[:n - p] == data[p:] or b"TCP6 "[:n - p] == data[p:] else _broken(data)
    if data[p:p + 3] != b"TCP" or data[p + 3] not in b"46" or data[p + 4] != 0x20:
        return _broken(data)
    p += 5
    src, p = _field(data, p, _ADDR_CHARS, 0x20)
    if src is None:
        return more if p == n else _broken(data)
    dst, p = _field(data, p, _ADDR_CHARS, 0x20)
    if dst is None:
        return more if p == n else _broken(data)
    sport, p = _field(data, p, None, 0x20)
    if sport is None:
        return more if p == n else _broken(data)
    dport, p = _field(data, p, None, 0x0D)
    if dport is None:
        return more if p == n else _broken(data)
    sport, dport = _port(sport), _port(dport)
    if sport is None or dport is None:
        return _broken(data)
    if p == n:
        return more
    if data[p] != 0x0A:
        return _broken(data)
    return DONE, ProxyHeader(src.decode("ascii"), sport, dst.decode("ascii"), dport), p + 1, ""


def _field(data: bytes, p: int, allowed, sep: int):
    """Bytes up to `sep` -> (field, position after sep); (None, len) when the data ends first,
    (None, position) on a byte not allowed."""
    start = p
    n = len(data)
    while p < n:
        ch = data[p]
        p += 1
        if ch == sep:
            return data[start:p - 1], p
        if allowed is not None and ch not in allowed:
            return None, p - 1
    return None, n


def _port(text: bytes) -> int | None:
    """ngx_atoi for a port: digits only, 0..65535."""
    if not text or not text.isdigit():
        return None
    v = int(text)
    return v if v <= 65535 else None


def _parse_v2(data: bytes):
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        return BROKEN, None, 0, f"unknown PROXY protocol version: {version}"
    length = int.from_bytes(data[14:16], "big")
    end = 16 + length
    if len(data) < end:
        return NEED_MORE, None, 0, ""
    family, transport = data[13] >> 4, data[13] & 0x0F
    if command != 1 or transport != 1:
        return DONE, None, end, ""          # LOCAL, or not STREAM: no addresses
    body = data[16:end]
    if family == 1:
        if length < 12:
            return BROKEN, None, 0, ""
        af, size = socket.AF_INET, 4
    elif family == 2:
        if length < 36:
            return BROKEN, None, 0, ""
        af, size = socket.AF_INET6, 16
    else:
        return DONE, None, end, ""
    src = socket.inet_ntop(af, body[:size])
    dst = socket.inet_ntop(af, body[size:2 * size])
    ports = body[2 * size:2 * size + 4]
    return DONE, ProxyHeader(src, int.from_bytes(ports[:2], "big"), dst,
                             int.from_bytes(ports[2:], "big")), end, ""


# ---------------------------------------------------------------- accept path

class ProxyProtocolAcceptor(asyncio.Protocol):
    """A new connection on a proxy_protocol socket until its header is read."""
    __slots__ = ("runtime", "listen", "transport", "timer", "buf", "next_protocol")

    def __init__(self, runtime, listen, next_protocol) -> None:
        self.runtime = runtime
        self.listen = listen
        self.next_protocol = next_protocol      # HttpConnection or CleartextHttp2
        self.transport = None
        self.timer = None
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        if not self.runtime.connection_opened(self):
            return
        timeout = self.listen.default_server.client_header_timeout
        self.timer = self.runtime.loop.call_later(timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        status, header, consumed, message = parse(buf)
        if status is NEED_MORE:
            self.buf = buf
            return
        self.timer.cancel()
        self.timer = None
        if status is BROKEN:
            if message:
                self._log("error", message)
            self.transport.close()
            return
        self._hand_over(header, buf[consumed:])

    def _hand_over(self, header, rest: bytes) -> None:
        runtime = self.runtime
        runtime.connection_closed(self, handover=True)
        proto = self.next_protocol(runtime, self.listen)
        proto.proxy_protocol = header
        transport = self.transport
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if rest:
            proto.data_received(rest)

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        """Closed before a whole header: nginx logs what it read as a broken header (on an ssl
        listen it peeks, and an empty peek is one too), or an empty plain read at info."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            if self.buf or self.listen.ssl_context is not None:
                self._log("error", _broken(self.buf)[3])
            else:
                self._log("info", "client closed connection")
        self.runtime.connection_closed(self)

    def _timed_out(self) -> None:
        self.timer = None
        self._log("info", "client timed out (110: Connection timed out)")
        self.transport.close()

    def _log(self, level: str, message: str) -> None:
        log(level, message, self.runtime, self.listen, self.transport.get_extra_info("peername"))

    # the runtime's view of a connection (drain and stop)
    def close_if_idle(self) -> bool:
        self.transport.close()
        return True

    def abort(self) -> None:
        self.transport.abort()


def log(level: str, message: str, runtime, listen, peer) -> None:
    """An error log line about the PROXY header of a connection from `peer`."""
    client = peer[0] if isinstance(peer, tuple) else "unix:"
    key = listen.key
    server = f"{key[0]}:{key[1]}" if key[0] != "unix" else "unix:" + str(key[1])
    if ":" in str(key[0]) and key[0] != "unix":
        server = f"[{key[0]}]:{key[1]}"
    error_log.log(level, f"{message} while reading PROXY protocol, client: {client}, "
                  f"server: {server}", runtime.next_connection_number())
