"""TLS to clients on the raw socket, as nginx does it: OpenSSL reads and writes the descriptor
itself (its socket BIO), driven by the loop's add_reader/add_writer. No memory BIOs, no copies
between them, no per-connection read buffer: one 16 KiB buffer per worker takes each record's
plaintext (a TLS record holds at most 16 KiB; `read(RECORD)` returning fresh bytes costs the
same instructions, in malloc/realloc of 16 KiB instead: bench/PROFILE.md, Session 8), and
OpenSSL's record buffers are released while a connection is idle (SSL_MODE_RELEASE_BUFFERS,
which CPython sets on every context).

TlsServer is the accept loop of a `listen ... ssl` socket (server/tls.py's TlsAcceptor takes
each new socket through PROXY header, sniffing and handshake). TlsTransport is the connection
once the handshake is done: an asyncio.Transport for HttpsConnection, Http2Connection and the
WebSocket tunnels.

TlsTransport states:
  open      reading (add_reader) unless paused; writes go to SSL_write at once. A write the
            socket does not take whole (SSL_WANT_WRITE) stays first in `_out` and is retried
            with the same bytes when the socket is writable (OpenSSL's rule); later writes
            queue behind it, joined into one. Past the high-water mark the protocol's
            pause_writing, at the low one resume_writing.
            SSL_read may end in SSL_WANT_WRITE (OpenSSL must send something before it reads
            on, and the socket is full; OpenSSL 3.0 itself sends a KeyUpdate's answer with the
            next SSL_write instead): reading then waits for writability (`_read_blocked`: no
            reader, a writer), as nginx's ngx_ssl_handle_recv does; a readable event would
            retry while the socket is still full.
  closing   close(): no more reads; once `_out` is empty, SSL_shutdown sends close_notify and
            the socket closes. abort() and fatal errors close at once, without close_notify.
  closed    the socket is closed; connection_lost(exc) runs on the next loop turn.
A close_notify or EOF from the peer is eof_received, then close().
"""
from __future__ import annotations

import asyncio
import socket
import ssl

from ngate.observability import error_log
from ngate.server.raw_socket import WRITE_HIGH, WRITE_LOW, Listener, write_limits

RECORD = 16384                  # the largest plaintext of a TLS record
_BUF = bytearray(RECORD)        # the worker's read buffer (records are copied out as bytes)
_VIEW = memoryview(_BUF)
_READS_PER_EVENT = 8            # full records read in one readiness event
_HIGH = WRITE_HIGH
_LOW = WRITE_LOW
_WantRead = ssl.SSLWantReadError
_WantWrite = ssl.SSLWantWriteError
_ZeroReturn = ssl.SSLZeroReturnError
_EOF = ssl.SSLEOFError
_Errors = (ssl.SSLError, OSError)


class TlsTransport(asyncio.Transport):
    """One client connection after its handshake (see the module docstring)."""
    __slots__ = ("_loop", "_sock", "_fd", "_tls", "_ssl_object", "_protocol", "_peer",
                 "_reading", "_read_blocked", "_closing", "_out", "_size", "_paused", "_high",
                 "_low")

    def __init__(self, loop, sock, ssl_object, peer) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._ssl_object = ssl_object
        self._tls = ssl_object._sslobj      # the C object: read/write without ssl.py's frames
        self._peer = peer
        self._protocol = None
        self._reading = False           # reading wanted (not paused, not closing)
        self._read_blocked = False      # ... but OpenSSL must write first: waits for writability
        self._closing = False
        self._out = None                # list of pending bytes, the first one in SSL_write
        self._size = 0
        self._paused = False
        self._high = _HIGH
        self._low = _LOW

    def start(self, protocol) -> None:
        """Hand the connection to `protocol` and start reading."""
        self._protocol = protocol
        self._reading = True
        self._loop.add_reader(self._fd, self._read_ready)
        protocol.connection_made(self)

    # ------------------------------------------------------------ reading

    def _read_ready(self) -> None:
        tls = self._tls
        reads = _READS_PER_EVENT
        while True:
            try:
                n = tls.read(RECORD, _BUF)
            except _WantRead:
                return
            except _WantWrite:
                return self._wait_writable()
            except (_ZeroReturn, _EOF):
                return self._eof()
            except _Errors as exc:
                return self._fatal(exc)
            if n == 0:
                return self._eof()
            try:
                self._protocol.data_received(_VIEW[:n].tobytes())
            except Exception as exc:       # as uvloop's transports: reported, connection closed
                return self._protocol_failed(exc)
            if n < RECORD:
                return          # (the usual case: a request's record, read whole)
            reads -= 1
            if not reads or not self._reading:
                return

    def _wait_writable(self) -> None:
        """SSL_read wants to write and the socket is full: read again once it is writable."""
        self._read_blocked = True
        loop = self._loop
        loop.remove_reader(self._fd)
        if self._out is None:
            loop.add_writer(self._fd, self._write_ready)

    def _unblock_read(self) -> None:
        """Writable after _wait_writable: reading goes on (and is tried at once)."""
        self._read_blocked = False
        loop = self._loop
        if self._out is None:
            loop.remove_writer(self._fd)
        if self._reading:
            loop.add_reader(self._fd, self._read_ready)
            self._read_ready()

    def _protocol_failed(self, exc) -> None:
        self._loop.call_exception_handler({
            "message": "Fatal error: protocol.data_received() call failed.",
            "exception": exc, "transport": self, "protocol": self._protocol})
        self.abort()

    def _eof(self) -> None:
        protocol = self._protocol
        if self._sock is None or protocol is None:
            return
        self._stop_reading()
        eof_received = getattr(protocol, "eof_received", None)
        if eof_received is not None:
            eof_received()
        self.close()

    def pause_reading(self) -> None:
        if self._reading:
            self._stop_reading()

    def resume_reading(self) -> None:
        if not self._reading and not self._closing and self._sock is not None:
            self._reading = True
            if not self._read_blocked:
                self._loop.add_reader(self._fd, self._read_ready)

    def is_reading(self) -> bool:
        return self._reading

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            if self._sock is not None and not self._read_blocked:
                self._loop.remove_reader(self._fd)

    # ------------------------------------------------------------ writing

    def write(self, data) -> None:
        out = self._out
        if out is not None:
            out.append(data if type(data) is bytes else bytes(data))
            self._size += len(data)
            if self._size > self._high and not self._paused:
                self._pause_protocol()
            return
        if self._sock is None or not data:
            return
        try:
            self._tls.write(data)
            return
        except (_WantWrite, _WantRead):
            pass
        except _Errors as exc:
            return self._fatal(exc)
        # OpenSSL took part of it: the same bytes again once the socket is writable
        self._out = [data if type(data) is bytes else bytes(data)]
        self._size = len(data)
        self._loop.add_writer(self._fd, self._write_ready)
        if self._size > self._high and not self._paused:
            self._pause_protocol()

    def writelines(self, lines) -> None:
        self.write(b"".join(lines))

    def _write_ready(self) -> None:
        if self._read_blocked:
            self._unblock_read()
            if self._sock is None or self._out is None:
                return
        out = self._out
        tls = self._tls
        while out:
            try:
                tls.write(out[0])
            except (_WantWrite, _WantRead):
                break
            except _Errors as exc:
                return self._fatal(exc)
            del out[0]
            if len(out) > 1:
                out[:] = [b"".join(out)]
        if out:
            self._size = len(out[0])
        else:
            self._size = 0
            self._out = None
            if not self._read_blocked:
                self._loop.remove_writer(self._fd)
            if self._closing:
                return self._shutdown()
        if self._paused and self._size <= self._low:
            self._paused = False
            self._protocol.resume_writing()

    def _pause_protocol(self) -> None:
        self._paused = True
        self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        return self._size

    def get_write_buffer_limits(self) -> tuple:
        return self._low, self._high

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self._high, self._low = high, low = write_limits(high, low)
        if self._size > high and not self._paused and self._protocol is not None:
            self._pause_protocol()

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half close")

    # ------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """close_notify once what is queued has gone out, then close the socket."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if self._out is None:
            self._shutdown()

    def abort(self) -> None:
        self._closing = True
        self._finish(None)

    def _shutdown(self) -> None:
        try:
            self._tls.shutdown()
        except _Errors:
            pass                        # sent, or the peer is gone: nginx closes either way
        self._finish(None)

    def _fatal(self, exc) -> None:
        if not isinstance(exc, (ConnectionResetError, BrokenPipeError, _EOF)):
            error_log.debug(f"SSL transport error: {exc}")
        self._closing = True
        self._finish(exc)

    def _finish(self, exc) -> None:
        sock = self._sock
        if sock is None:
            return
        loop = self._loop
        if self._reading:
            self._reading = False
            if not self._read_blocked:
                loop.remove_reader(self._fd)
        if self._out is not None or self._read_blocked:
            self._out = None
            self._size = 0
            self._read_blocked = False
            loop.remove_writer(self._fd)
        self._sock = None
        sock.close()
        loop.call_soon(self._lost, exc)

    def _lost(self, exc) -> None:
        protocol = self._protocol
        self._protocol = None
        if protocol is not None:
            protocol.connection_lost(exc)

    # ------------------------------------------------------------ the rest of the interface

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self._ssl_object
        if name == "peername":
            return self._peer
        if name == "sockname":
            sock = self._sock
            return sock.getsockname() if sock is not None else default
        if name == "socket":
            return self._sock
        if name == "sslcontext":
            return self._ssl_object.context
        if name == "peercert":
            return self._ssl_object.getpeercert()
        if name == "cipher":
            return self._ssl_object.cipher()
        if name == "compression":
            return self._ssl_object.compression()
        return default

    def set_protocol(self, protocol) -> None:
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol


class TlsServer(Listener):
    """The accept loop of one `listen ... ssl` socket (raw_socket.py Listener: the accept
    error's line and pause, close()): `accepted(sock, peer)` per connection."""
    __slots__ = ("_accepted", "_nodelay")

    def __init__(self, loop, sock, backlog: int, accepted) -> None:
        self._accepted = accepted
        self._nodelay = sock.family in (socket.AF_INET, socket.AF_INET6)
        self._listen(loop, sock, backlog)

    def _accept(self) -> None:
        sock = self._sock
        for _ in range(self.BATCH):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                return self._accept_failed(exc)
            conn.setblocking(False)
            if self._nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._accepted(conn, peer)
