"""What an HTTP/2 connection writes (a mixin of Http2Connection, connection.py): the frames of
its streams' responses within the client's windows, stream resets, and the one write per loop
turn that carries them (flush_later)."""
from __future__ import annotations

from ngate.http2.frames import ErrorCodes, goaway, rst_stream
from ngate.http2.framing import StreamClosed
from ngate.observability import error_log
from ngate.http import log


class Output:
    __slots__ = ()

    def send_stream(self, s) -> None:
        """Send what the stream has queued as far as the windows allow; END_STREAM at its end."""
        if s.closing or s.ended or self.closing:
            return
        fr = self.framing
        sid = s.sid
        try:
            if s.hdrs is not None:
                hdrs = s.hdrs
                s.hdrs = None
                if s.ending and s.trailers is None:
                    n = s.out_size
                    if not n:
                        fr.send_headers(sid, hdrs, True)
                        self._ended(s)
                        return self.flush_later()
                    if fr.send_response(sid, hdrs, s.out, self._chunk(s, fr)):
                        # a whole small response: HEADERS + one DATA with END_STREAM
                        s.out_size = 0
                        self._ended(s)
                        return self.flush_later()
                fr.send_headers(sid, hdrs)
            elif s.head is not None:
                return          # no head yet (a send queued by a stream since reset)
            out = s.out
            if out:
                chunk = self._chunk(s, fr)
                sent = 0
                while s.out_size:
                    window = fr.window(sid)
                    if window <= 0:
                        break
                    if window > chunk:
                        window = chunk
                    piece = bytes(out[sent:sent + window])
                    sent += len(piece)
                    s.out_size -= len(piece)
                    # the last piece carries END_STREAM, as nginx's last_buf (unless
                    # add_trailer's HEADERS frame follows)
                    last = s.ending and not s.out_size and s.trailers is None
                    fr.send_data(sid, piece, last)
                    if last:
                        del out[:]
                        self._ended(s)
                        return self.flush_later()
                if sent:
                    del out[:sent]
                    s.progressed()
                    self.flood = 0
                if s.out_size:
                    s.stalled()
            if s.ending and not s.out_size:
                if s.trailers is not None:      # add_trailer: the trailing HEADERS frame
                    fr.send_headers(sid, s.trailers, True)
                else:
                    fr.end_stream(sid)
                self._ended(s)
        except StreamClosed:
            s.client_closed()
            self.streams.pop(sid, None)
        self.flush_later()

    def _chunk(self, s, fr) -> int:
        """The largest DATA frame of the stream: http2_chunk_size, within the frame size
        (Http2Stream.respond_whole has a copy)."""
        ctx = s.ctx
        chunk = (ctx.conf or self.conf).http2_chunk_size if ctx is not None \
            else self.conf.http2_chunk_size
        return chunk if chunk < fr.frame_size else fr.frame_size

    def sendable(self, s) -> int:
        """Bytes of DATA the windows let the stream send now."""
        return self.framing.window(s.sid)

    def _ended(self, s) -> None:
        """The stream's END_STREAM is sent (Http2Stream.respond_whole has a copy of the usual
        case)."""
        s.ended = True
        if s.timer is not None:
            s._cancel_timer()
        if s.body_timer is not None:
            s._cancel_body()
        if s.unlogged is not None:
            ctx, s.unlogged = s.unlogged, None
            log.log_request(ctx)
        req = s.current
        s.current = None
        s.ctx = None
        if req is not None and not req.complete:
            # the response is complete before the request body: nginx stops reading it
            self.framing.reset(s.sid, ErrorCodes.NO_ERROR)
        streams = self.streams
        streams.pop(s.sid, None)
        if self.prio is not None:
            self.prio.closed_stream(s.sid)
        if not streams and (not self.batch or self.going_away):
            self._after_stream()        # in a client read: at its end (_idle_or_recv)

    def ack(self, s, n: int) -> None:
        """Reopen the stream's receive window by n consumed body bytes."""
        if self.closing or s.ended:
            return
        self.framing.ack(s.sid, n)
        self.flush_later()

    def reset_stream(self, s, code) -> None:
        self.streams.pop(s.sid, None)
        self._stream_closed(s.sid)
        if not self.closing:
            self.framing.reset(s.sid, code)
            self.flush()
        self._after_stream()

    def _refuse(self, sid: int) -> None:
        self.framing.reset(sid, ErrorCodes.REFUSED_STREAM)

    def send_later(self, s) -> None:
        """A stream wrote: its frames go at the end of this client read (before its one
        flush), or of this loop turn (_flush_soon), with what the handler wrote meanwhile."""
        if self.sending is None:
            self.sending = [s]
        else:
            self.sending.append(s)
        if not self.batch and not self.flush_soon:
            self.flush_soon = True
            self.runtime.loop.call_soon(self._flush_soon)

    def send_queued(self) -> None:
        """The streams that wrote since the last turn send (each once)."""
        sending = self.sending
        self.sending = None
        for s in sending:
            s.send_pending()

    def flush_later(self) -> None:
        """Frames queued by a stream out of a client read (an upstream's response, a window
        reopened): written once this loop turn's callbacks are done, so the responses of
        several upstream reads leave in one write (one TLS record) instead of one each."""
        if not self.batch and not self.flush_soon:
            self.flush_soon = True
            self.runtime.loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        if self.sending:
            self.send_queued()      # their flush_later calls fold into this one
        self.flush_soon = False
        self.flush()
        if self.sending:        # written while sending (a producer resumed): the next turn
            self.flush_later()

    def flush(self) -> None:
        data = self.framing.data_to_send()
        if data and not self.closing:
            try:
                self.transport.write(data)
            except RuntimeError:
                pass

    def _write_now(self, data: bytes) -> None:
        """A frame out of order (GOAWAY on reload, a stream reset before its headers)."""
        self.flush()
        try:
            self.transport.write(data)
        except RuntimeError:
            pass

    def goaway(self) -> None:
        """Graceful stop or reload: GOAWAY with the last stream taken; streams in flight end."""
        if self.going_away or self.closing:
            return
        self.going_away = True
        self._write_now(goaway(self.framing.last_sid, ErrorCodes.NO_ERROR))

    def _fail(self, code, message: str, last_sid: int = 0) -> None:
        """A connection error: logged as nginx words it, GOAWAY (naming the last stream begun,
        as nginx's last_sid), close."""
        error_log.info(message + ", client: " + self.remote_addr, self.number)
        fr = self.framing
        fr.put(goaway(max(last_sid, fr.last_sid), code))
        self.flush()
        self._close()

    def _reset_early(self, sid: int) -> None:
        """client_header_timeout before a stream's header block ended: RST_STREAM now."""
        self._write_now(rst_stream(sid, ErrorCodes.PROTOCOL_ERROR))
