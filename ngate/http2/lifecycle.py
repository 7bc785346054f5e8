"""An HTTP/2 connection's timers and end (a mixin of Http2Connection, connection.py):
http2_idle_timeout between streams, http2_recv_timeout inside a frame, client_header_timeout of
a stream whose header block is still arriving, graceful close (GOAWAY, lingering) and abort."""
from __future__ import annotations

from ngate.http2.frames_out import NO_STREAMS
from ngate.observability import error_log
from ngate.server.clock import OneTimer


class Lifecycle(OneTimer):
    __slots__ = ()

    def _active(self) -> int:
        return len(self.streams)

    def _after_stream(self) -> None:
        if self.streams or self.closing:
            return
        if self.going_away:
            return self._close(linger=True)
        if not self.batch:      # in a client read: armed at its end (_idle_or_recv)
            self._idle()

    def _idle(self) -> None:
        """No stream active: http2_idle_timeout, and the stream tables go (the shared empty
        NO_STREAMS until the next stream), as nginx frees an idle connection's HTTP/2 pool."""
        self.streams = self.framing.streams = NO_STREAMS      # (one table: framing.py)
        self._arm(self._idle_value())

    def _idle_or_recv(self) -> None:
        """http2_recv_timeout while a frame is incomplete, else http2_idle_timeout while no
        stream is active (streams have their own timeouts)."""
        fr = self.framing
        if fr.buf or fr.block is not None:
            sid = fr.pending_stream()
            if sid:
                # nginx: the stream exists once its HEADERS frame begins; client_header_timeout
                # is that stream's, which is reset (the connection lives on)
                if sid != self.partial:
                    self.partial = sid
                    self._arm(self.conf.client_header_timeout, Lifecycle._header_timeout)
                return
            self._arm(self.conf.http2_recv_timeout or self.conf.client_header_timeout,
                      Lifecycle._recv_timeout)
        elif not self.streams:
            self._idle()
        elif self.timer is not None:
            self._cancel_timer()

    def _header_timeout(self) -> None:
        sid, self.partial = self.partial, 0
        if self.closing or not sid:
            return
        error_log.info("client timed out (110: Connection timed out) while reading client "
                       "request headers, client: " + self.remote_addr, self.number)
        if self.dropped is None:
            self.dropped = set()
        self.dropped.add(sid)
        self._reset_early(sid)
        if not self.streams:
            self._arm(self._idle_value())

    def _arm_write(self) -> None:
        """send_timeout while the client reads nothing of what is queued (nginx's write timer
        on the connection: a stream's window is open, the socket is not)."""
        timeout = self.conf.conf.send_timeout
        if timeout > 0 and not self.closing:
            self.write_timer = self.runtime.loop.call_later(
                timeout, self._write_timeout, self.transport.get_write_buffer_size())

    def _write_timeout(self, left: int) -> None:
        """`left`: the transport's buffered bytes when the timer was armed."""
        self.write_timer = None
        if self.closing or not self.write_paused:
            return
        if self.transport.get_write_buffer_size() < left:
            return self._arm_write()        # the client reads, slowly
        error_log.info("client timed out (110: Connection timed out) while sending to client, "
                       "client: " + self.remote_addr, self.number)
        self.abort()            # the streams end in connection_lost (499)

    def _idle_value(self) -> float:
        """nginx 1.19.7+: keepalive_timeout between streams (http2_idle_timeout if set)."""
        return self.conf.http2_idle_timeout or self.conf.conf.keepalive_timeout

    def _recv_timeout(self) -> None:
        if self.closing:
            return
        error_log.info("client timed out (110: Connection timed out) while processing HTTP/2 "
                       "connection, client: " + self.remote_addr, self.number)
        self._close()

    def _close(self, linger: bool = False) -> None:
        """Close; `linger`: after GOAWAY with all answered, nginx's lingering close (our side
        shut, what still arrives dropped for lingering_timeout): a frame the client sends
        meanwhile (a PING) must not make the kernel reset the connection before the client
        has read the end of its responses."""
        if self.closing:
            return
        self.flush()        # what the last stream queued (its END_STREAM) goes first
        self.closing = True
        self._cancel_timer()
        streams = list(self.streams.values())
        self.streams = NO_STREAMS
        for s in streams:
            s.client_closed()
        t = self.transport
        if linger and self.tls is None and t.can_write_eof():
            t.write_eof()
            self.timer = Lifecycle._linger_end
            self.deadline = self.runtime.loop.time() + self.conf.conf.lingering_timeout
            self.runtime.deadlines.watch(self)
            return
        t.close()

    def _linger_end(self) -> None:
        self.transport.close()

    # the runtime's view of a connection (graceful stop, abort)
    def close_if_idle(self) -> bool:
        self.goaway()
        if not self.streams:
            self._close(linger=True)
            return True
        return False

    def abort(self) -> None:
        if self.closing:
            return      # closed, or closing gracefully (a tunnel's 1001 close frame may be
            #             on its way out: an abort would reset it away)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ timers (server/clock.py)

    def _arm(self, timeout: float, callback=None) -> None:
        """`callback`: a function of the connection (no bound method held while idle)."""
        if timeout > 0:
            self.timer = callback or Lifecycle._idle_timeout
            self.deadline = self.runtime.loop.time() + timeout
            self.runtime.deadlines.watch(self)

    def expired(self) -> None:
        callback = self.timer
        self.timer = None
        if callback is not None:
            callback(self)

    def _idle_timeout(self) -> None:
        """http2_idle_timeout with no stream active: GOAWAY and close, as nginx."""
        if self.streams or self.closing:
            return
        self.goaway()
        self._close(linger=True)

    @classmethod
    def take_over(cls, old, transport, proto: str, data: bytes = b""):
        """The client chose HTTP/2 (ALPN h2, or the h2c preface): this connection takes the
        transport from the HTTP/1.x one that accepted it."""
        if old in old.runtime.connections:
            old.runtime.connection_closed(old, handover=True)
        old.closing = True
        conn = cls(old.runtime, old.listen, proto)
        conn.proxy_protocol = old.proxy_protocol
        transport.set_protocol(conn)
        conn.connection_made(transport)
        if data:
            conn.data_received(data)
        return conn
