"""Cleartext HTTP/2 with prior knowledge on a plain `listen ... http2` socket: a connection whose
first bytes are the HTTP/2 preface ("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n") becomes an
Http2Connection; any other stays HTTP/1.x (nginx 1.25's detection; 1.22 spoke only HTTP/2 on
such a socket)."""
from __future__ import annotations

from ngate.http2.connection import PREFACE, Http2Connection
from ngate.server.connection import HttpConnection


class CleartextHttp2(HttpConnection):
    __slots__ = ("_sniff",)

    def __init__(self, runtime, listen) -> None:
        super().__init__(runtime, listen)
        self._sniff = b""           # None once decided

    def data_received(self, data: bytes) -> None:
        sniff = self._sniff
        if sniff is not None:
            probe = sniff + data
            n = min(len(probe), len(PREFACE))
            if probe[:n] == PREFACE[:n]:
                if n < len(PREFACE):
                    self._sniff = probe     # the preface so far: wait for the rest
                    return
                self._sniff = None
                self._cancel_timer()
                # the transport itself, not server/turn_writes.py's DeferredTransport
                Http2Connection.take_over(self, self.transport.detach(), "h2c", probe)
                return
            self._sniff = None
            data = probe
        super().data_received(data)
