"""The sans-IO HTTP/2 connection state of a server (RFC 9113), with nginx's checks
(ngx_http_v2.c's ngx_http_v2_state_* handlers: same conditions, error codes and log lines).

Bytes in (`receive`) -> frames parsed in place (one struct.unpack_from per frame head) ->
calls on the `sink` (Http2Connection): on_headers, on_trailers, on_data, on_reset, on_window,
on_settings, on_settings_ack, on_ping, on_priority, on_goaway. A connection error raises
ConnectionFault (the sink sends GOAWAY); a stream error writes RST_STREAM and calls
on_reset(sid, code, message, state: the stream's if it was in `streams`, else None), as a
client's RST_STREAM does (message None). What the server sends is packed into `out`
(data_to_send).

Connection: preface expected -> frames. A header block in progress (HEADERS without END_HEADERS)
admits only CONTINUATION frames of its stream, at most _CONTINUATIONS of them.

Streams (StreamState, only while open; the sink may give a class of its own with those four
slots, `state`: Http2Connection's streams are their own state, one object a stream): created by
a HEADERS frame with a new odd id above the last one (nginx's last_sid: ids never go back);
`in_closed` after the client's END_STREAM, `out_closed` after ours; forgotten when both are, or
on RST_STREAM either way. A frame for a stream not (or no longer) known is skipped as nginx does
(DATA still counts against the connection window); HEADERS on such an id is a PROTOCOL_ERROR.

One table for the layer and its sink: `streams` holds the streams whose side of ours is open
(the sink's active streams: Http2Connection's `streams` is this dict, set on the sink where the
layer makes one), `half` the few whose response ended while the client's side is still open
(their frames are still checked: flow control, END_STREAM, RST_STREAM). A stream leaves
`streams` when our END_STREAM goes out, into `half` unless the client's side has ended too.

Flow control: our receive windows (connection: 2^31-1, refilled below a quarter as nginx;
stream: http2_body_preread_size, reopened by `ack` as the body is consumed) and the client's
(connection and per stream, SETTINGS_INITIAL_WINDOW_SIZE changes applied to open streams).
"""
from __future__ import annotations

from ngate.http2.compression import HpackFault
from ngate.http2.hpack_out import StatelessEncoder
from ngate.http2.frames_out import NO_STREAMS, FramesOut, StreamClosed, StreamState
from ngate.http2.frames import (ACK, CONTINUATION, DATA, DEFAULT_FRAME_SIZE, DEFAULT_WINDOW,
                                END_HEADERS, END_STREAM, ENABLE_PUSH, HEADERS,
                                INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_FRAME_SIZE_VALUE,
                                MAX_WINDOW, PADDED, PREFACE, PRIORITY_FLAG, PUSH_PROMISE,
                                SETTINGS_ACK, ErrorCodes, ping_ack, rst_stream, settings,
                                settings_pairs, u32, unpack_head, window_update)

_CONTINUATIONS = 64         # CONTINUATION frames per header block (CVE-2024-27316)
_PROTO = ErrorCodes.PROTOCOL_ERROR
_SIZE = ErrorCodes.FRAME_SIZE_ERROR
_FLOW = ErrorCodes.FLOW_CONTROL_ERROR
_PAD_PRIO = PADDED | PRIORITY_FLAG
_USUAL = PADDED | PRIORITY_FLAG | END_HEADERS     # flags & _USUAL == END_HEADERS: receive's case


class ConnectionFault(Exception):
    """A connection error: GOAWAY `code`, `message` logged as nginx words it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Block:
    """A header block awaiting CONTINUATION frames: its fragments so far and its HEADERS
    frame's stream, flags, priority and whether it opens the stream."""
    __slots__ = ("fragments", "sid", "flags", "size", "prio", "new")

    def __init__(self, fragment, sid: int, flags: int, prio, new: bool) -> None:
        self.fragments = [fragment]
        self.sid = sid
        self.flags = flags
        self.size = len(fragment)
        self.prio = prio
        self.new = new


class Framing(FramesOut):
    """Per connection: what an idle connection holds is kept small (no stream table of its
    own while no stream is open, no output buffer between writes, the header block state
    made only when a block spans frames, the server's limits a shared pair)."""
    __slots__ = ("sink", "buf", "need", "preface", "streams", "last_sid", "send_window",
                 "recv_window", "init_window", "frame_size", "limits", "decoder", "out",
                 "block", "state", "half")
    encoder = StatelessEncoder()    # stateless (hpack_out.py): one for every connection

    def __init__(self, sink, decoder, limits: tuple) -> None:
        self.sink = sink
        self.buf = b""              # an incomplete frame (or preface): a bytearray then
        self.need = len(PREFACE)    # bytes buf must hold before anything can be parsed
        self.preface = True
        self.streams = NO_STREAMS   # id -> StreamState (a dict of its own once one opens)
        self.last_sid = 0
        self.send_window = DEFAULT_WINDOW       # the client's connection window
        self.recv_window = MAX_WINDOW           # ours, after initiate()'s WINDOW_UPDATE
        self.init_window = DEFAULT_WINDOW       # the client's SETTINGS_INITIAL_WINDOW_SIZE
        self.frame_size = DEFAULT_FRAME_SIZE    # the client's SETTINGS_MAX_FRAME_SIZE
        self.limits = limits        # (our initial stream window, the largest frame read)
        self.decoder = decoder      # None: made by the sink with the first header block
        self.out = None             # frames to write: a bytearray until data_to_send
        self.block = None           # a _Block while a header block awaits CONTINUATION
        self.state = StreamState    # the class of an open stream's state (its four slots)
        self.half = None            # sid -> state of streams we ended, the client's side open

    @property
    def preread(self) -> int:
        return self.limits[0]

    def initiate(self, values: dict) -> None:
        """Our SETTINGS, and the connection window opened to 2^31-1 as nginx."""
        self.put(settings(values))
        self.put(window_update(0, MAX_WINDOW - DEFAULT_WINDOW))

    # ------------------------------------------------------------ frames in

    def receive(self, data) -> None:
        buf = self.buf
        if buf:
            buf += data
            if len(buf) < self.need:
                return
            data = bytes(buf)
            self.buf = b""          # no buffer held between reads (idle connections)
        elif len(data) < self.need:
            self.buf = bytearray(data)
            return
        elif data.__class__ is not bytes:
            data = bytes(data)      # frames are slices of bytes (hashable: decode's memo)
        pos = 0
        end = len(data)
        if self.preface:
            if data[:24] != PREFACE:
                raise ConnectionFault(_PROTO, "invalid connection preface")
            self.preface = False
            pos = 24
        sink = self.sink
        largest = self.limits[1]
        while end - pos >= 9:
            hi, lo, kind, flags, sid = unpack_head(data, pos)
            n = hi << 8 | lo
            sid &= 0x7fffffff
            if kind == PUSH_PROMISE:
                raise ConnectionFault(_PROTO, "client sent PUSH_PROMISE frame")
            if n > largest:
                raise ConnectionFault(_SIZE, f"client sent frame with too large length {n}")
            start = pos + 9
            if end - start < n:
                self.need = 9 + n
                self.buf = bytearray(data[pos:] if pos else data)
                return
            pos = start + n
            if self.block is not None and kind != CONTINUATION:
                raise ConnectionFault(_PROTO, "client sent inappropriate frame while "
                                      "CONTINUATION was expected")
            if kind == HEADERS:
                if flags & _USUAL == END_HEADERS and n and sid & 1 and sid > self.last_sid:
                    # the usual request: a new stream's header block whole in one frame, no
                    # padding, no priority (_headers's checks all pass): written out here, a
                    # call less (_block_done has the same steps)
                    self.last_sid = sid
                    block = data[start:pos]
                    decoder = self.decoder
                    if decoder is None:
                        decoder = self.decoder = sink.new_decoder()
                    memo = decoder.memo     # a block decoded before: decode's memo
                    fields = memo.get(block) if memo is not None else None
                    if fields is None:
                        fields = decoder.decode(block)
                    ended = flags & END_STREAM != 0
                    streams = self.streams
                    if streams is NO_STREAMS:
                        streams = self.streams = sink.streams = {}     # one table (above)
                    streams[sid] = st = self.state()
                    st.send_window = self.init_window
                    st.recv_window = self.limits[0]
                    st.in_closed = ended
                    st.out_closed = False
                    sink.on_headers(sid, fields, ended, n, st)
                else:
                    self._headers(flags, sid, data[start:pos])
            elif kind == DATA:
                self._data(flags, sid, data[start:pos])
            elif kind < 10:
                _HANDLERS[kind](self, flags, sid, data[start:pos])
            if sink.closing:
                return
        self.need = 9
        if pos < end:
            self.buf = bytearray(data[pos:])

    def _headers(self, flags: int, sid: int, p: bytes) -> None:
        n = len(p)
        pos = 0
        pad = 0
        prio = None
        if flags & _PAD_PRIO:
            size = (1 if flags & PADDED else 0) + (5 if flags & PRIORITY_FLAG else 0)
            if n < size:
                raise ConnectionFault(_SIZE, f"client sent HEADERS frame with incorrect length {n}")
            if n == size:
                raise ConnectionFault(_SIZE, "client sent HEADERS frame with empty header block")
            if flags & PADDED:
                pad = p[0]
                pos = 1
                if pad > n - size:
                    raise ConnectionFault(_PROTO, "client sent padded HEADERS frame with "
                                          f"incorrect length: {n - size}, padding: {pad}")
            if flags & PRIORITY_FLAG:
                dep = u32(p, pos)
                prio = (dep & 0x7fffffff, p[pos + 4] + 1, dep >> 31)
                pos += 5
        elif not n:
            raise ConnectionFault(_SIZE, "client sent HEADERS frame with empty header block")
        if sid & 1 == 0 or sid <= self.last_sid:
            st = self.streams.get(sid) or self._half(sid)
            if st is None or st.in_closed or not flags & END_STREAM:
                raise ConnectionFault(_PROTO, "client sent HEADERS frame with incorrect "
                                      f"identifier {sid}, the last was {self.last_sid}")
            new = False                 # trailers
        else:
            if prio is not None and prio[0] == sid:
                raise ConnectionFault(_PROTO, f"client sent HEADERS frame for stream {sid} "
                                      "with incorrect dependency")
            self.last_sid = sid
            new = True
        block = p[pos:n - pad] if pad or pos else p
        if flags & END_HEADERS:
            return self._block_done(sid, flags, block, len(block), prio, new)
        self.block = _Block(block, sid, flags, prio, new)

    def _continuation(self, flags: int, sid: int, p: bytes) -> None:
        block = self.block
        if block is None:
            raise ConnectionFault(_PROTO, "client sent unexpected CONTINUATION frame")
        if sid != block.sid:
            raise ConnectionFault(_PROTO, "client sent CONTINUATION frame with incorrect "
                                  "identifier")
        fragments = block.fragments
        fragments.append(p)
        block.size += len(p)
        if len(fragments) > _CONTINUATIONS:
            raise ConnectionFault(ErrorCodes.ENHANCE_YOUR_CALM,
                                  "client sent too many CONTINUATION frames")
        if block.size > 2 * self.limits[1]:
            raise ConnectionFault(ErrorCodes.ENHANCE_YOUR_CALM, "client sent too large header")
        if flags & END_HEADERS:
            self.block = None
            self._block_done(sid, block.flags, b"".join(fragments), block.size, block.prio,
                             block.new)

    def _block_done(self, sid, flags, block, size, prio, new) -> None:
        """A complete header block (receive has a copy of the new-stream case)."""
        decoder = self.decoder
        if decoder is None:
            decoder = self.decoder = self.sink.new_decoder()
        fields = decoder.decode(block)
        end = flags & END_STREAM != 0
        if new:
            streams = self.streams
            if streams is NO_STREAMS:
                streams = self.streams = self.sink.streams = {}
            streams[sid] = st = self.state()
            st.send_window = self.init_window
            st.recv_window = self.limits[0]
            st.in_closed = end
            st.out_closed = False
            self.sink.on_headers(sid, fields, end, size, st)
        else:
            st = self.streams.get(sid) or self._half(sid)
            if st is not None:
                st.in_closed = True
                if st.out_closed:
                    self._forget_half(sid)
            self.sink.on_trailers(sid, fields)
        if prio is not None and not self.sink.closing:
            self.sink.on_priority(sid, *prio)

    def _data(self, flags: int, sid: int, p: bytes) -> None:
        size = len(p)
        data = p
        if flags & PADDED:
            if size == 0:
                raise ConnectionFault(_SIZE, "client sent padded DATA frame with incorrect "
                                      "length: 0")
            pad = p[0]
            if pad >= size:
                raise ConnectionFault(_PROTO, "client sent padded DATA frame with incorrect "
                                      f"length: {size}, padding: {pad}")
            data = p[1:size - pad]
        if sid == 0:
            raise ConnectionFault(_PROTO, "client sent DATA frame with incorrect identifier")
        if size > self.recv_window:
            raise ConnectionFault(_FLOW, "client violated connection flow control: received "
                                  f"DATA frame length {size}, available window "
                                  f"{self.recv_window}")
        self.recv_window -= size
        if self.recv_window < MAX_WINDOW // 4:
            self.put(window_update(0, MAX_WINDOW - self.recv_window))
            self.recv_window = MAX_WINDOW
        st = self.streams.get(sid) or self._half(sid)
        end = flags & END_STREAM != 0
        if st is not None:
            if size > st.recv_window:
                return self._terminate(sid, _FLOW, f"client violated flow control for stream "
                                       f"{sid}: received DATA frame length {size}, available "
                                       f"window {st.recv_window}")
            st.recv_window -= size
            if st.in_closed:
                return self._terminate(sid, ErrorCodes.STREAM_CLOSED,
                                       f"client sent DATA frame for half-closed stream {sid}")
            if end:
                st.in_closed = True
                if st.out_closed:
                    self._forget_half(sid)
        self.sink.on_data(sid, data, size, end)

    def _priority(self, flags: int, sid: int, p: bytes) -> None:
        if len(p) != 5:
            raise ConnectionFault(_SIZE, f"client sent PRIORITY frame with incorrect length "
                                  f"{len(p)}")
        if sid == 0:
            raise ConnectionFault(_PROTO, "client sent PRIORITY frame with incorrect identifier")
        dep = u32(p)
        if dep & 0x7fffffff == sid:
            raise ConnectionFault(_PROTO, f"client sent PRIORITY frame for stream {sid} with "
                                  "incorrect dependency")
        self.sink.on_priority(sid, dep & 0x7fffffff, p[4] + 1, dep >> 31)

    def _rst_stream(self, flags: int, sid: int, p: bytes) -> None:
        if len(p) != 4:
            raise ConnectionFault(_SIZE, f"client sent RST_STREAM frame with incorrect length "
                                  f"{len(p)}")
        if sid == 0:
            raise ConnectionFault(_PROTO, "client sent RST_STREAM frame with incorrect "
                                  "identifier")
        self.sink.on_reset(sid, u32(p), None, self._pop(sid))

    def _settings(self, flags: int, sid: int, p: bytes) -> None:
        if sid:
            raise ConnectionFault(_PROTO, "client sent SETTINGS frame with incorrect identifier")
        n = len(p)
        if flags == ACK:
            if n:
                raise ConnectionFault(_SIZE, "client sent SETTINGS frame with the ACK flag and "
                                      "nonzero length")
            return self.sink.on_settings_ack()
        if n % 6:
            raise ConnectionFault(_SIZE, f"client sent SETTINGS frame with incorrect length {n}")
        delta = 0
        for key, value in settings_pairs(p):
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionFault(_FLOW, "client sent SETTINGS frame with incorrect "
                                          f"INITIAL_WINDOW_SIZE value {value}")
                delta = value - self.init_window
            elif key == MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_VALUE:
                    raise ConnectionFault(_PROTO, "client sent SETTINGS frame with incorrect "
                                          f"MAX_FRAME_SIZE value {value}")
                self.frame_size = value
            elif key == ENABLE_PUSH and value > 1:
                raise ConnectionFault(_PROTO, "client sent SETTINGS frame with incorrect "
                                      f"ENABLE_PUSH value {value}")
        self.put(SETTINGS_ACK)
        if delta:
            self.init_window += delta
            items = list(self.streams.items())
            if self.half is not None:
                items += self.half.items()
            for sid, st in items:
                if delta > 0 and st.send_window > MAX_WINDOW - delta:
                    self._terminate(sid, _FLOW, "")
                else:
                    st.send_window += delta
        self.sink.on_settings()

    def _ping(self, flags: int, sid: int, p: bytes) -> None:
        if len(p) != 8:
            raise ConnectionFault(_SIZE, f"client sent PING frame with incorrect length {len(p)}")
        if sid:
            raise ConnectionFault(_PROTO, "client sent PING frame with incorrect identifier")
        if not flags & ACK:
            self.put(ping_ack(p))
            self.sink.on_ping()

    def _goaway(self, flags: int, sid: int, p: bytes) -> None:
        if len(p) < 8:
            raise ConnectionFault(_SIZE, f"client sent GOAWAY frame with incorrect length "
                                  f"{len(p)}")
        if sid:
            raise ConnectionFault(_PROTO, "client sent GOAWAY frame with incorrect identifier")
        self.sink.on_goaway()

    def _window_update(self, flags: int, sid: int, p: bytes) -> None:
        if len(p) != 4:
            raise ConnectionFault(_SIZE, "client sent WINDOW_UPDATE frame with incorrect "
                                  f"length {len(p)}")
        window = u32(p) & 0x7fffffff
        if window == 0:
            raise ConnectionFault(_PROTO, "client sent WINDOW_UPDATE frame with incorrect "
                                  "window increment 0")
        if sid:
            st = self.streams.get(sid) or self._half(sid)
            if st is None:
                return self.sink.on_window(-1)
            if window > MAX_WINDOW - st.send_window:
                return self._terminate(sid, _FLOW, f"client violated flow control for stream "
                                       f"{sid}: received WINDOW_UPDATE frame with window "
                                       f"increment {window} not allowed for window "
                                       f"{st.send_window}")
            st.send_window += window
        else:
            if window > MAX_WINDOW - self.send_window:
                raise ConnectionFault(_FLOW, "client violated connection flow control: received"
                                      f" WINDOW_UPDATE frame with window increment {window} "
                                      f"not allowed for window {self.send_window}")
            self.send_window += window
        self.sink.on_window(sid)

    def _skip(self, flags: int, sid: int, p: bytes) -> None:
        pass

    def _terminate(self, sid: int, code: int, message: str) -> None:
        """A stream error: RST_STREAM, the stream forgotten, the sink told."""
        st = self._pop(sid)
        self.put(rst_stream(sid, code))
        self.sink.on_reset(sid, code, message, st)

    def pending_stream(self) -> int:
        """The id of a new stream whose header block has begun and not ended (nginx's stream
        exists from its HEADERS frame: client_header_timeout), else 0."""
        block = self.block
        if block is not None:
            return block.sid if block.new else 0
        buf = self.buf
        if len(buf) >= 9 and buf[3] == HEADERS:
            sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
            if sid > self.last_sid and sid & 1:
                return sid
        return 0


_HANDLERS = (Framing._data, Framing._headers, Framing._priority, Framing._rst_stream,
             Framing._settings, Framing._skip, Framing._ping, Framing._goaway,
             Framing._window_update, Framing._continuation)
__all__ = ["ConnectionFault", "Framing", "HpackFault", "StreamClosed", "StreamState"]
