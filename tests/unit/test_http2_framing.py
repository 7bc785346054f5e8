"""ngate's sans-IO HTTP/2 layer (ngate/http2/framing.py, frames.py, huffman.py) on its own:
frames in as bytes (split anywhere), calls on a recording sink, frames out as bytes. The
hpack library (a test dependency) is the reference for HPACK and Huffman."""
from __future__ import annotations

import struct

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings, strategies as st

from ngate.http2 import huffman
from ngate.http2.compression import HpackFault, NginxDecoder
from ngate.http2.frames import PREFACE, ErrorCodes
from ngate.http2.framing import ConnectionFault, Framing, StreamClosed
from ngate.http2.hpack_out import StatelessEncoder

REQ = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) \
        + payload


class Sink:
    closing = False

    def __init__(self) -> None:
        self.calls: list = []

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)
        if name == "on_headers":    # (sid, fields, ended, size, the new stream's state)
            return lambda *args: self.calls.append(("headers",) + args[:4])
        return lambda *args: self.calls.append((name[3:],) + args)


def layer(preread: int = 65535) -> tuple[Framing, Sink]:
    sink = Sink()
    fr = Framing(sink, NginxDecoder(8192, 32768), (preread, 48 * 1024))
    fr.receive(PREFACE)
    return fr, sink


def out_frames(fr: Framing) -> list:
    data = bytes(fr.data_to_send())
    frames = []
    while data:
        n = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9:9 + n]))
        data = data[9 + n:]
    return frames


def test_huffman_matches_hpack():
    enc = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode
    for s in (b"", b"www.example.com", bytes(range(256)), b"/index.html?a=b&c=d" * 20):
        assert huffman.encode(s) == enc(s)
        assert huffman.decode(enc(s)) == s


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_huffman_round_trip(data):
    assert huffman.decode(huffman.encode(data)) == data


def test_huffman_rejects_eos_and_bad_padding():
    with pytest.raises(huffman.HuffmanError):
        huffman.decode(b"\xff\xff\xff\xff")         # EOS (30 ones) inside the string
    with pytest.raises(huffman.HuffmanError):
        huffman.decode(b"\x00")                     # '0' (00000) then padding of zeros
    # nginx takes padding of more than 7 bits (any prefix of EOS)
    assert huffman.decode(huffman.encode(b"abc") + b"\xff") == b"abc"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=20).map(bytes.lower),
                          st.binary(max_size=40)), max_size=12))
def test_stateless_encoder_decodes_with_hpack(fields):
    fields = [(n.replace(b":", b"x"), v) for n, v in fields]
    dec = hpack.Decoder()
    assert dec.decode(StatelessEncoder().encode(fields), raw=True) == fields


def test_repeated_block_is_decoded_again_once_the_table_changes():
    """A block of indexes decodes to the same list while the dynamic table stays as it is
    (compression.py keeps it); an insert (or a size update) changes what index 62 means."""
    dec = NginxDecoder(8192, 32768)
    first = dec.decode(b"\x40\x01a\x011")         # a: 1, with incremental indexing
    assert list(first) == [(b"a", b"1")]
    block = b"\x82\xbe"                           # :method GET, then index 62
    assert list(dec.decode(block)) == [(b":method", b"GET"), (b"a", b"1")]
    assert dec.decode(block) == dec.decode(block)
    dec.decode(b"\x40\x01b\x012")                 # b: 2 is index 62 now
    assert list(dec.decode(block)) == [(b":method", b"GET"), (b"b", b"2")]
    dec.decode(b"\x3f\xe1\x1f")                   # size update to 4096: nothing evicted
    assert list(dec.decode(block)) == [(b":method", b"GET"), (b"b", b"2")]
    dec.decode(b"\x20")                           # size update to 0: the table empties
    with pytest.raises(HpackFault):
        dec.decode(block)


def test_request_split_at_every_byte():
    block = hpack.Encoder().encode(REQ)
    data = frame(4, 0, 0) + frame(1, 0x5, 1, block)
    fr, sink = layer()
    for i in range(len(data)):
        fr.receive(data[i:i + 1])
    assert sink.calls == [("settings",), ("headers", 1, REQ, True, len(block))]
    assert [f[:3] for f in out_frames(fr)] == [(4, 1, 0)]       # SETTINGS ACK


def test_padding_continuation_and_priority():
    block = hpack.Encoder().encode(REQ)
    fr, sink = layer()
    payload = bytes([3]) + struct.pack(">IB", 0, 15) + block[:5] + b"\0\0\0"
    fr.receive(frame(1, 0x8 | 0x20, 1, payload) + frame(9, 0, 1, block[5:9])
               + frame(9, 0x4, 1, block[9:]))
    assert sink.calls == [("headers", 1, REQ, False, len(block)), ("priority", 1, 0, 16, 0)]
    fr.receive(frame(0, 0x9, 1, bytes([2]) + b"body" + b"\0\0"))
    assert sink.calls[-1] == ("data", 1, b"body", 7, True)
    assert fr.streams[1].recv_window == 65535 - 7


def test_idle_layer_holds_no_table_or_buffer_of_its_own():
    """No stream open: the stream table is the shared NO_STREAMS (which takes no entry) and
    nothing is buffered once the frames were taken; the first stream gets a table of its own,
    and a header block awaiting CONTINUATION names its new stream (pending_stream)."""
    from ngate.http2.frames_out import NO_STREAMS
    fr, sink = layer()
    assert fr.streams is NO_STREAMS and fr.block is None
    fr.data_to_send()
    assert fr.out is None and fr.data_to_send() == b""
    with pytest.raises(TypeError):
        NO_STREAMS[1] = object()
    block = hpack.Encoder().encode(REQ)
    fr.receive(frame(1, 0x1, 1, block[:4]))
    assert fr.pending_stream() == 1 and fr.streams is NO_STREAMS
    fr.receive(frame(9, 0x4, 1, block[4:]))
    assert fr.pending_stream() == 0 and fr.block is None
    assert fr.streams is not NO_STREAMS and 1 in fr.streams and not NO_STREAMS
    assert sink.calls[-1] == ("headers", 1, REQ, True, len(block))


@pytest.mark.parametrize("data, code", [
    (frame(9, 0x4, 1, b"\x82"), ErrorCodes.PROTOCOL_ERROR),      # CONTINUATION unexpected
    (frame(0, 0, 0, b"x"), ErrorCodes.PROTOCOL_ERROR),           # DATA on stream 0
    (frame(0, 0x8, 1), ErrorCodes.FRAME_SIZE_ERROR),             # padded, no pad length
    (frame(6, 0, 0, b"1234567"), ErrorCodes.FRAME_SIZE_ERROR),   # PING of 7 octets
    (frame(4, 0, 1), ErrorCodes.PROTOCOL_ERROR),                 # SETTINGS on a stream
    (frame(4, 0, 0, struct.pack(">HI", 5, 100)), ErrorCodes.PROTOCOL_ERROR),    # frame size
    (frame(4, 0, 0, struct.pack(">HI", 4, 2 ** 31)), ErrorCodes.FLOW_CONTROL_ERROR),
    (frame(8, 0, 0, struct.pack(">I", 0)), ErrorCodes.PROTOCOL_ERROR),          # increment 0
    (frame(8, 0, 0, struct.pack(">I", 2 ** 31 - 1)), ErrorCodes.FLOW_CONTROL_ERROR),
    (frame(5, 0x4, 1, b"\0\0\0\3\x82"), ErrorCodes.PROTOCOL_ERROR),             # PUSH_PROMISE
    (frame(1, 0x5, 2, b"\x82"), ErrorCodes.PROTOCOL_ERROR),      # even stream id
    (frame(2, 0, 1, struct.pack(">IB", 1, 0)), ErrorCodes.PROTOCOL_ERROR),      # depends on itself
    (frame(3, 0, 1, b"\0\0"), ErrorCodes.FRAME_SIZE_ERROR),
    (frame(7, 0, 0, b"\0\0\0\0"), ErrorCodes.FRAME_SIZE_ERROR),
])
def test_connection_errors(data, code):
    fr, _ = layer()
    with pytest.raises(ConnectionFault) as exc:
        fr.receive(data)
    assert exc.value.code == code


def test_frame_inside_a_header_block_is_protocol_error():
    fr, _ = layer()
    fr.receive(frame(1, 0x1, 1, b"\x82"))
    with pytest.raises(ConnectionFault, match="CONTINUATION was expected"):
        fr.receive(frame(6, 0, 0, b"12345678"))


def test_continuation_flood_is_enhance_your_calm():
    fr, _ = layer()
    fr.receive(frame(1, 0x1, 1, b"\x82"))
    with pytest.raises(ConnectionFault) as exc:
        fr.receive(frame(9, 0, 1) * 100)
    assert exc.value.code == ErrorCodes.ENHANCE_YOUR_CALM


def test_hpack_fault_carries_nginx_code():
    fr, _ = layer()
    with pytest.raises(HpackFault) as exc:
        fr.receive(frame(1, 0x5, 1, b"\xff\xff\xff\xff\xff\xff"))
    assert exc.value.code == ErrorCodes.COMPRESSION_ERROR
    assert fr.last_sid == 1


def test_stream_flow_control_violation_resets_only_that_stream():
    fr, sink = layer(preread=10)
    fr.receive(frame(1, 0x4, 1, hpack.Encoder().encode(REQ)))
    fr.data_to_send()
    fr.receive(frame(0, 0, 1, b"x" * 11))
    assert sink.calls[-1][:3] == ("reset", 1, ErrorCodes.FLOW_CONTROL_ERROR)
    assert out_frames(fr) == [(3, 0, 1, struct.pack(">I", ErrorCodes.FLOW_CONTROL_ERROR))]
    fr.receive(frame(0, 0, 1, b"late"))          # a stream no longer known: skipped
    assert sink.calls[-1] == ("data", 1, b"late", 4, False)
    assert 1 not in fr.streams


def test_send_windows_and_settings_delta():
    fr, sink = layer()
    fr.receive(frame(1, 0x5, 1, hpack.Encoder().encode(REQ)))
    assert fr.window(1) == 65535
    fr.receive(frame(4, 0, 0, struct.pack(">HI", 4, 100)))
    assert fr.window(1) == 100
    fr.send_headers(1, [(b":status", b"200")])
    fr.send_data(1, b"x" * 100)
    assert fr.window(1) == 0
    fr.receive(frame(8, 0, 1, struct.pack(">I", 50)))
    assert fr.window(1) == 50 and sink.calls[-1] == ("window", 1)
    fr.send_data(1, b"y" * 50, True)
    assert 1 not in fr.streams                    # both sides closed
    with pytest.raises(StreamClosed):
        fr.send_data(1, b"z")
    kinds = [(k, fl, sid, len(p)) for k, fl, sid, p in out_frames(fr)]
    assert kinds == [(4, 1, 0, 0), (1, 4, 1, 1), (0, 0, 1, 100), (0, 1, 1, 50)]


def test_large_header_list_goes_out_in_continuation_frames():
    fr, _ = layer()
    fr.receive(frame(1, 0x5, 1, hpack.Encoder().encode(REQ)))
    big = [(b":status", b"200")] + [(b"x-h%d" % i, b"~" * 1000) for i in range(40)]    # ~ not Huffman-coded
    fr.send_headers(1, big, True)
    frames = out_frames(fr)
    assert [f[0] for f in frames] == [1, 9, 9]
    assert [f[1] for f in frames] == [1, 0, 4]
    assert hpack.Decoder().decode(b"".join(f[3] for f in frames), raw=True) == big


def test_ping_is_answered_and_trailers_end_the_stream():
    fr, sink = layer()
    enc = hpack.Encoder()
    fr.receive(frame(6, 0, 0, b"12345678") + frame(1, 0x4, 1, enc.encode(REQ))
               + frame(0, 0, 1, b"ab") + frame(1, 0x5, 1, enc.encode([(b"x-t", b"1")])))
    assert [c[0] for c in sink.calls] == ["ping", "headers", "data", "trailers"]
    assert out_frames(fr) == [(6, 1, 0, b"12345678")]
    assert fr.streams[1].in_closed


_frames = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 255), st.integers(0, 9),
                             st.binary(max_size=40)), max_size=12)


@settings(max_examples=400, deadline=None)
@given(_frames, st.integers(1, 64))
def test_any_frames_end_in_a_fault_or_calls_never_an_exception(frames, cut):
    """Bad input is a ConnectionFault or HpackFault (GOAWAY), never another exception, however
    the bytes are split across reads; what is sent back parses as frames."""
    fr, sink = layer()
    data = b"".join(frame(k, f, sid, p) for k, f, sid, p in frames)
    try:
        for i in range(0, len(data), cut):
            fr.receive(data[i:i + cut])
    except (ConnectionFault, HpackFault) as exc:
        assert exc.code in set(ErrorCodes) and exc.message
    for kind, _flags, _sid, _payload in out_frames(fr):
        assert kind in (3, 4, 6, 8)
    for sid in fr.streams:
        assert sid & 1 and sid <= fr.last_sid


def test_one_table_with_the_sink_and_streams_we_ended_first():
    """The layer's `streams` is the sink's table (set where the layer makes one) and holds the
    streams whose side of ours is open; a stream whose END_STREAM we sent before the client's
    leaves it for `half`, where its DATA is still checked against its window and its END_STREAM
    forgets it; a reset tells the sink the stream only if it was in `streams`."""
    fr, sink = layer(preread=10)
    enc = hpack.Encoder()
    fr.receive(frame(1, 0x4, 1, enc.encode(REQ)) + frame(1, 0x4, 3, enc.encode(REQ))
               + frame(1, 0x4, 5, enc.encode(REQ)))
    assert sink.streams is fr.streams and list(fr.streams) == [1, 3, 5]
    st1, st3, st5 = fr.streams[1], fr.streams[3], fr.streams[5]
    fr.send_headers(1, [(b":status", b"200")], True)
    assert fr.send_response(3, [(b":status", b"200")], b"ok", 16384)
    assert list(fr.streams) == [5] and fr.half == {1: st1, 3: st3}
    assert st1.out_closed and not st1.in_closed and fr.window(1) == 0
    with pytest.raises(StreamClosed):
        fr.send_data(1, b"late")
    fr.data_to_send()
    fr.receive(frame(0, 0, 1, b"abcd"))
    assert sink.calls[-1] == ("data", 1, b"abcd", 4, False) and st1.recv_window == 6
    fr.receive(frame(0, 1, 1, b"ef"))               # the client's END_STREAM: forgotten
    assert sink.calls[-1] == ("data", 1, b"ef", 2, True) and fr.half == {3: st3}
    fr.receive(frame(0, 0, 3, b"x" * 11))            # past its window: RST_STREAM
    assert sink.calls[-1] == ("reset", 3, ErrorCodes.FLOW_CONTROL_ERROR, "client violated "
                              "flow control for stream 3: received DATA frame length 11, "
                              "available window 10", None)
    assert fr.half is None
    fr.receive(frame(3, 0, 5, struct.pack(">I", ErrorCodes.CANCEL)))     # an active stream
    assert sink.calls[-1] == ("reset", 5, ErrorCodes.CANCEL, None, st5) and not fr.streams
    fr.receive(frame(0, 1, 1, b"gone"))             # a stream no longer known: skipped
    assert sink.calls[-1] == ("data", 1, b"gone", 4, True)


def test_streams_we_ended_first_take_a_settings_window_change_and_a_reset():
    """SETTINGS_INITIAL_WINDOW_SIZE applies to the streams of both tables (the overflow check
    resets one of `half` too); our RST_STREAM forgets a stream of either."""
    fr, sink = layer()
    enc = hpack.Encoder()
    fr.receive(frame(1, 0x4, 1, enc.encode(REQ)) + frame(1, 0x4, 3, enc.encode(REQ)))
    fr.send_headers(1, [(b":status", b"200")], True)
    fr.receive(frame(8, 0, 1, struct.pack(">I", 2 ** 31 - 1 - 65535)))      # stream 1's window
    assert fr.half[1].send_window == 2 ** 31 - 1
    fr.data_to_send()
    fr.receive(frame(4, 0, 0, struct.pack(">HI", 4, 65536)))    # +1: stream 1 overflows
    assert ("reset", 1, ErrorCodes.FLOW_CONTROL_ERROR, "", None) in sink.calls
    assert fr.half is None and fr.streams[3].send_window == 65536
    fr.send_headers(3, [(b":status", b"200")], True)
    assert fr.half is not None
    fr.reset(3, ErrorCodes.NO_ERROR)
    assert fr.half is None and not fr.streams


def test_whole_responses_pack_as_headers_and_data_frames():
    """send_response's one pack of HEADERS + DATA (the pair kept per length, the last kept
    block's without a lookup) gives the bytes send_headers and send_data give, whatever the
    sequence of blocks (the same object again, an equal copy, another length) and bodies."""
    enc = hpack.Encoder()
    a = StatelessEncoder().encode([(b":status", b"200"), (b"server", b"ngate")])
    b = StatelessEncoder().encode([(b":status", b"404")])
    cases = [(a, b"ok\n"), (a, b"ok\n"), (bytes(bytearray(a)), b"ok\n"), (a, b"longer\n"),
             (b, b"ok\n"), (a, b"ok\n"), ([(b":status", b"201")], b"x"), (a, b"ok\n")]
    fr, _ = layer()
    ref, _ = layer()
    for i, (block, body) in enumerate(cases):
        sid = 2 * i + 1
        req = frame(1, 0x5, sid, enc.encode(REQ))
        fr.receive(req)
        ref.receive(req)
        fr.data_to_send()
        ref.data_to_send()
        assert fr.send_response(sid, block, body, 16384)
        ref.send_headers(sid, block)
        ref.send_data(sid, body, True)
        assert bytes(fr.data_to_send()) == bytes(ref.data_to_send()), i
        assert sid not in fr.streams and sid not in ref.streams
