"""The sending side of ngate's HTTP/2 layer (framing.py's Framing): response HEADERS (with
CONTINUATION past the client's SETTINGS_MAX_FRAME_SIZE), DATA within the client's windows,
END_STREAM, RST_STREAM and WINDOW_UPDATE, packed into the connection's output buffer."""
from __future__ import annotations

import struct

from ngate.http2.frames import CONTINUATION, DATA, END_STREAM, HEADERS, head, rst_stream, \
    window_update

# a whole response's two frames (HEADERS of n block bytes, DATA of m bytes with END_STREAM) packed
# in one call: _pair's (pack, the two frame heads' first 5 bytes), keyed by n << 24 | m; bounded
_PAIRS: dict = {}
_PAIRS_MAX = 256
# the last whole response's (block, m, pack, first, second): a kept block (head.response_block's,
# the same bytes object for a second) with a body of the same length takes its pair without a
# lookup (the int key's objects, hash and compare)
_LAST = [None, -1, None, None, None]


def _pair(n: int, m: int) -> tuple:
    """(pack, HEADERS's length/type/flags, DATA's) of a whole response's two frames: the
    frame heads but their stream ids as bytes made once (pack(first, sid, block, second,
    sid, data)); the table is bounded."""
    if len(_PAIRS) >= _PAIRS_MAX:
        _PAIRS.clear()
    return (struct.Struct(f">5sL{n}s5sL{m}s").pack, head(n >> 8, n & 0xFF, HEADERS, 0x4, 0)[:5],
            head(m >> 8, m & 0xFF, DATA, END_STREAM, 0)[:5])


class StreamClosed(Exception):
    """Sending on a stream that is no longer open (reset, or our side ended)."""


class NoStreams(dict):
    """The stream table of a connection without open streams: one empty dict shared by all
    (an idle connection holds no table of its own), which takes no entry: the first stream
    gives its connection a dict of its own (`streams is NO_STREAMS`), and the connection
    puts this one back once idle (lifecycle.py)."""
    __slots__ = ()

    def __setitem__(self, key, value):
        raise TypeError("NO_STREAMS takes no entry")

    def setdefault(self, key, default=None):
        raise TypeError("NO_STREAMS takes no entry")

    def update(self, *args, **kw):
        raise TypeError("NO_STREAMS takes no entry")


NO_STREAMS = NoStreams()


class StreamState:
    """An open stream as the layer sees it: the windows both ways and which sides ended.
    No __init__: Framing sets the four slots where it opens a stream (_headers, _block_done);
    a Python __init__ costs CPython more than making the object (its call from C)."""
    __slots__ = ("send_window", "recv_window", "in_closed", "out_closed")


class FramesOut:
    """Needs `streams`, `half`, `send_window`, `frame_size`, `encoder` and `out` (Framing's:
    None or a bytearray of frames not yet taken by data_to_send)."""
    __slots__ = ()

    # the two tables (framing.py): `streams`, our side open; `half`, ours ended, the client's not

    def _half(self, sid: int):
        """The state of a stream we ended whose client side is open, or None."""
        half = self.half
        return half.get(sid) if half is not None else None

    def _half_closed(self, sid: int, st) -> None:
        """Our END_STREAM went out before the client's: the stream leaves `streams` (the
        sink's active streams) for `half`, where its frames are still checked."""
        del self.streams[sid]
        half = self.half
        if half is None:
            half = self.half = {}
        half[sid] = st

    def _forget_half(self, sid: int) -> None:
        half = self.half
        del half[sid]
        if not half:
            self.half = None

    def _pop(self, sid: int):
        """Forget the stream (reset either way): its state if it was in `streams` (an active
        stream of the sink's), else None."""
        st = self.streams.pop(sid, None)
        if st is None and self.half is not None and sid in self.half:
            self._forget_half(sid)
        return st

    def put(self, frame) -> None:
        out = self.out
        if out is None:
            self.out = bytearray(frame)
        else:
            out += frame

    def window(self, sid: int) -> int:
        """Bytes of DATA the client's windows take now on the stream (none once ours ended:
        not in `streams`)."""
        st = self.streams.get(sid)
        if st is None or st.out_closed:
            return 0
        w = st.send_window
        return w if w < self.send_window else self.send_window

    def _sending(self, sid: int, end_stream: bool) -> StreamState:
        st = self.streams.get(sid)
        if st is None or st.out_closed:
            raise StreamClosed(sid)
        if end_stream:
            st.out_closed = True
            if st.in_closed:
                del self.streams[sid]
            else:
                self._half_closed(sid, st)
        return st

    def send_headers(self, sid: int, fields, end_stream: bool = False) -> None:
        """A header list (or its encoded block, bytes: head.response_block) as HEADERS (and
        CONTINUATION frames past the client's frame size)."""
        self._sending(sid, end_stream)
        block = fields if fields.__class__ is bytes else self.encoder.encode(fields)
        n = len(block)
        size = self.frame_size
        out = self.out
        if out is None:
            out = self.out = bytearray()
        if n <= size:
            out += head(n >> 8, n & 0xFF, HEADERS, 0x5 if end_stream else 0x4, sid)
            out += block
            return
        out += head(size >> 8, size & 0xFF, HEADERS, 0x1 if end_stream else 0, sid)
        out += block[:size]
        for i in range(size, n, size):      # END_HEADERS on the last
            piece = block[i:i + size]
            m = len(piece)
            out += head(m >> 8, m & 0xFF, CONTINUATION, 0x4 if i + size >= n else 0, sid)
            out += piece

    def send_data(self, sid: int, data, end_stream: bool = False) -> None:
        """DATA within the windows and the frame size (window() and frame_size checked)."""
        st = self._sending(sid, end_stream)
        n = len(data)
        st.send_window -= n
        self.send_window -= n
        out = self.out
        if out is None:
            out = self.out = bytearray()
        out += head(n >> 8, n & 0xFF, DATA, END_STREAM if end_stream else 0, sid)
        out += data

    def send_response(self, sid: int, fields, data, chunk: int) -> bool:
        """A whole response as HEADERS and one DATA frame with END_STREAM, when the data fits
        the windows and `chunk` (http2_chunk_size within the frame size), or as HEADERS with
        END_STREAM when there is no data; else False, nothing sent. `fields`: a header list
        or its encoded block (bytes)."""
        st = self.streams.get(sid)
        if st is None or st.out_closed:
            raise StreamClosed(sid)
        m = len(data)
        if m and (m > chunk or m > st.send_window or m > self.send_window):
            return False
        block = fields if fields.__class__ is bytes else self.encoder.encode(fields)
        n = len(block)
        if n > self.frame_size:         # CONTINUATION frames: send_headers's
            if not m:
                self.send_headers(sid, block, True)
                return True
            self.send_headers(sid, block)
            self.send_data(sid, data, True)
            return True
        st.out_closed = True
        if st.in_closed:
            del self.streams[sid]
        else:
            self._half_closed(sid, st)
        out = self.out
        if out is None:
            out = self.out = bytearray()
        if not m:
            out += head(n >> 8, n & 0xFF, HEADERS, 0x5, sid)
            out += block
            return True
        st.send_window -= m
        self.send_window -= m
        last = _LAST
        if last[0] is block and last[1] == m:
            _, _, pack, first, second = last
        else:
            pair = _PAIRS.get(n << 24 | m)
            if pair is None:
                pair = _PAIRS[n << 24 | m] = _pair(n, m)
            pack, first, second = pair
            if block is fields:     # a block given (kept): the next one may be the same
                _LAST[:] = block, m, pack, first, second
        out += pack(first, sid, block, second, sid, data)
        return True

    def end_stream(self, sid: int) -> None:
        self._sending(sid, True)
        self.put(head(0, 0, DATA, END_STREAM, sid))

    def reset(self, sid: int, code: int) -> None:
        self._pop(sid)
        self.put(rst_stream(sid, code))

    def forget(self, sid: int) -> None:
        """A stream reset earlier (no second RST_STREAM)."""
        self._pop(sid)

    def ack(self, sid: int, n: int) -> None:
        """The stream's receive window reopened by n bytes the request body consumed."""
        st = self.streams.get(sid) or self._half(sid)
        if st is None or st.in_closed or n <= 0:
            return
        st.recv_window += n
        self.put(window_update(sid, n))

    def data_to_send(self):
        out = self.out
        self.out = None
        return out or b""

