"""What ngate's own raw-socket transports and accept loops share (server/plain_transport.py
for plain TCP, server/tls_transport.py for TLS): the write buffer's limits and the listening
socket's accept loop frame (its error line, the 500 ms pause, the close)."""
from __future__ import annotations

import errno

from ngate.observability import error_log

WRITE_HIGH = 64 * 1024          # asyncio's and uvloop's default write buffer limits
WRITE_LOW = WRITE_HIGH // 4


def write_limits(high, low) -> tuple[int, int]:
    """set_write_buffer_limits' (high, low), as asyncio computes them from what was given."""
    if high is None:
        high = WRITE_HIGH if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def accept_failed(exc: OSError) -> None:
    """ngx_event_accept's line for a failed accept: [crit] when no descriptor is left (EMFILE,
    ENFILE), [alert] for the rest."""
    text = f"accept4() failed ({exc.errno}: {exc.strerror})"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        error_log.crit(text)
    else:
        error_log.alert(text)


class Listener:
    """One listening socket's accept loop: the subclass's `_accept` runs on readiness; after
    an accept error (other than a connection aborted in the queue) nginx logs it and accepts
    nothing for 500 ms (`_accept_failed`). close() stops accepting and closes the worker's
    copy of the listening socket (as uvloop's server does, and nginx's worker on a graceful
    stop: ngx_close_listening_sockets), so once the master's copy is closed too new
    connections are refused instead of queued for a worker that will never accept them."""
    __slots__ = ("_loop", "_sock", "_fd", "_timer")
    BATCH = 64                      # connections accepted per readiness event

    def _listen(self, loop, sock, backlog: int) -> None:
        self._loop = loop
        self._sock = sock
        self._timer = None
        sock.listen(backlog)
        sock.setblocking(False)
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._accept)

    def _accept(self) -> None:      # pragma: no cover - the subclasses'
        raise NotImplementedError

    def _accept_failed(self, exc: OSError) -> None:
        accept_failed(exc)
        loop = self._loop
        loop.remove_reader(self._fd)
        self._timer = loop.call_later(0.5, self._resume)

    def _resume(self) -> None:
        self._timer = None
        self._loop.add_reader(self._fd, self._accept)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        elif self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if self._fd >= 0:
            self._fd = -1
            self._sock.close()
