"""A name server's connections (ngx_resolver_connection_t): a connected UDP socket, opened on
first use and again after an error, and a TCP stream for queries whose UDP answer came truncated
(two-byte length prefixes both ways). Answers go to Resolver.received; errors are logged as nginx
logs them, with ", resolver: ADDR" after "while resolving"."""
from __future__ import annotations

import asyncio
import socket

from ngate.observability import error_log

UDP_SIZE = 4096         # NGX_RESOLVER_UDP_SIZE
TCP_TIMEOUT = 5.0       # r->tcp_timeout


class Channel:
    __slots__ = ("resolver", "family", "addr", "text", "udp", "tcp")

    def __init__(self, resolver, family: int, addr: tuple, text: str) -> None:
        self.resolver = resolver
        self.family = family
        self.addr = addr
        self.text = text
        self.udp: socket.socket | None = None
        self.tcp: _TcpStream | None = None

    def error(self, message: str) -> None:
        error_log.error(f"{message} while resolving, resolver: {self.text}")

    def send(self, query: bytes, tcp: bool) -> bool:
        return self._send_tcp(query) if tcp else self._send_udp(query)

    # ------------------------------------------------------------ UDP

    def _send_udp(self, query: bytes) -> bool:
        sock = self.udp
        try:
            if sock is None:
                sock = socket.socket(self.family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                try:
                    sock.connect(self.addr)
                except OSError:
                    sock.close()
                    raise
                self.udp = sock
                self.resolver.loop.add_reader(sock.fileno(), self._readable)
            sock.send(query)
            return True
        except OSError as err:
            what = "send()" if self.udp is not None else "connect()"
            self.error(f"{what} failed {error_log.os_error(err)}")
            self._close_udp()
            return False

    def _readable(self) -> None:
        sock = self.udp
        while sock is not None:
            try:
                data = sock.recv(UDP_SIZE)
            except BlockingIOError:
                return
            except OSError as err:
                self.error(f"recv() failed {error_log.os_error(err)}")
                self._close_udp()
                return
            self.resolver.received(data, False, self)
            sock = self.udp

    def _close_udp(self) -> None:
        sock, self.udp = self.udp, None
        if sock is not None:
            try:
                self.resolver.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass
            sock.close()

    # ------------------------------------------------------------ TCP

    def _send_tcp(self, query: bytes) -> bool:
        if self.tcp is None:
            self.tcp = _TcpStream(self)
        self.tcp.write(len(query).to_bytes(2, "big") + query)
        return True

    def close(self) -> None:
        self._close_udp()
        if self.tcp is not None:
            self.tcp.close()


class _TcpStream(asyncio.Protocol):
    """One TCP connection to the name server; queries written before it connects wait."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.transport = None
        self.pending = bytearray()
        self.buf = bytearray()
        self.closed = False
        loop = channel.resolver.loop
        self.timer = loop.call_later(TCP_TIMEOUT, self._timed_out)
        self.task = loop.create_task(self._connect())

    async def _connect(self) -> None:
        ch = self.channel
        try:
            await ch.resolver.loop.create_connection(lambda: self, sock=self._socket())
        except OSError as err:
            ch.error(f"connect() failed {error_log.os_error(err)}")
            self.close()

    def _socket(self) -> socket.socket:
        sock = socket.socket(self.channel.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.channel.addr)
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            raise
        return sock

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self.pending += data
        else:
            self.transport.write(data)

    def connection_made(self, transport) -> None:
        if self.closed:
            transport.close()
            return
        self.transport = transport
        if self.pending:
            transport.write(bytes(self.pending))
            self.pending.clear()
        self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 2:
            n = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + n:
                break
            msg = bytes(buf[2:2 + n])
            del buf[:2 + n]
            self.channel.resolver.received(msg, True, self.channel)
            if self.closed:
                return

    def connection_lost(self, exc) -> None:
        self._forget()

    def _timed_out(self) -> None:
        if self.transport is None:
            self.channel.error("connect() timed out (110: Connection timed out)")
        self.close()

    def _forget(self) -> None:
        self.closed = True
        self.timer.cancel()
        if self.channel.tcp is self:
            self.channel.tcp = None

    def close(self) -> None:
        self._forget()
        if self.transport is not None:
            self.transport.close()
        elif not self.task.done():
            self.task.cancel()
