"""`syslog:` log targets, as nginx 1.22.1 sends them (src/core/ngx_syslog.c).

A message is one datagram, RFC 3164's shape:

    <PRI>Mmm dd hh:mm:ss hostname tag: MSG        (nohostname: `<PRI>Mmm dd hh:mm:ss tag: MSG`)

PRI = facility * 8 + severity. The time is the local time of the second (`Dec  7 09:05:01`,
the day padded with a space); hostname is gethostname() in lower case; no newline at the end.
- access_log: MSG is the log_format line; the severity is the target's `severity=` (info).
- error_log: MSG is the whole error-log line (`2026/12/07 ... [error] pid#tid: *N ...`, at most
  2047 bytes as nginx cuts it); the severity is the line's level, whatever `severity=` says.

Sending (ngx_syslog_send): one UDP or unix datagram socket per target, made, set non-blocking
and connect()ed at its first message (`connect() failed` is an [alert]; the message is lost).
A send that would block (EAGAIN) drops the message. Any other send error (a refused UDP port
reports ECONNREFUSED on the send after the ICMP) is logged to the main error log at [error]
(reset, refused, unreachable ...) or [alert] (others), the socket is closed, and the next
message makes a new one. The access log adds `[warn] send() to syslog failed while logging
request` to the request's log. An error-log target never logs into itself (its `busy` flag).

`header()` and `body()` are pure (bytes in, bytes out); `SyslogPeer` owns the socket.
"""
from __future__ import annotations

import errno
import socket
import time

from ngate.observability.log_format import _CLOCK, _MONTHS

NGX_AGAIN = -2
NGX_ERROR = -1
MAX_ERROR_STR = 2048        # nginx's NGX_MAX_ERROR_STR: an error line is at most 2047 bytes + LF

# ngx_connection_error: these are [error] (log_error is NGX_ERROR_ALERT), the rest [alert]
_ERROR_LEVEL = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT,
                          errno.ECONNREFUSED, errno.ENETDOWN, errno.ENETUNREACH,
                          errno.EHOSTDOWN, errno.EHOSTUNREACH, 0})


def hostname() -> str:
    """cycle->hostname: gethostname() in lower case (at most 63 bytes, as nginx reads it)."""
    return socket.gethostname().encode("latin-1", "replace")[:63].decode("latin-1").lower()


def header(server, severity: int, host: str, stamp: str) -> bytes:
    """ngx_syslog_add_header: `<PRI>stamp host tag: ` (`stamp` is syslog_time())."""
    pri = server.facility * 8 + severity
    if server.nohostname:
        return f"<{pri}>{stamp} {server.tag}: ".encode("latin-1")
    return f"<{pri}>{stamp} {host} {server.tag}: ".encode("latin-1")


_STAMP = [-1, ""]           # (second, its syslog_time), made only when a syslog target asks


def syslog_time() -> str:
    """ngx_cached_syslog_time: `Dec  7 09:05:01` of the current second (local time), the
    second of the log lines' $time_local (log_format's clock)."""
    sec = _CLOCK.tick().sec
    stamp = _STAMP
    if stamp[0] != sec:
        t = time.localtime(sec)
        stamp[1] = "%s %2d %02d:%02d:%02d" % (_MONTHS[t.tm_mon - 1], t.tm_mday, t.tm_hour,
                                              t.tm_min, t.tm_sec)
        stamp[0] = sec
    return stamp[1]


def error_body(line: bytes) -> bytes:
    """An error-log line as ngx_syslog_writer sends it: without its newline, cut as nginx cuts
    the line (NGX_MAX_ERROR_STR)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    return line[:MAX_ERROR_STR - 1]


class SyslogPeer:
    """One target's socket (ngx_syslog_peer_t): made at the first send, remade after an error.
    Errors go to the main error log (ngx_cycle->log), not a location's. `busy` is set while an
    error-log line is being sent, so that an error of this send does not come back to it."""
    __slots__ = ("server", "sock", "host", "busy")

    def __init__(self, server) -> None:
        self.server = server
        self.sock: socket.socket | None = None
        self.host = hostname()
        self.busy = False

    def send(self, data: bytes) -> int:
        """The bytes sent, NGX_AGAIN (would block: dropped) or NGX_ERROR (logged)."""
        sock = self.sock
        if sock is None:
            sock = self._connect()
            if sock is None:
                return NGX_ERROR
        try:
            return sock.send(data)
        except (BlockingIOError, InterruptedError):
            return NGX_AGAIN
        except OSError as err:
            code = err.errno or 0
            _log("error" if code in _ERROR_LEVEL else "alert",
                     f"send() failed {_os_error(err)}")
            self.close()
            return NGX_ERROR

    def _connect(self) -> socket.socket | None:
        """ngx_syslog_init_peer: socket(), non-blocking, connect(); an [alert] on failure."""
        server = self.server
        try:
            sock = socket.socket(server.family, socket.SOCK_DGRAM)
        except OSError as err:
            _log("alert", f"socket() failed {_os_error(err)}")
            return None
        try:
            sock.setblocking(False)
            sock.connect(server.address)
        except OSError as err:
            _log("alert", f"connect() failed {_os_error(err)}")
            sock.close()
            return None
        self.sock = sock
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def _os_error(err: OSError) -> str:
    from ngate.observability.error_log import os_error
    return os_error(err)


def _log(level: str, message: str) -> None:
    from ngate.observability import error_log
    error_log.log(level, message)
