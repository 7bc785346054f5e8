"""The frame scanner: boundaries in any split of the stream, ngate's own pongs dropped."""
import random

import pytest
from wsproto.frame_protocol import FrameProtocol

from ngate.websocket.frames import PING_PAYLOAD, FrameScanner, close_frame, ping_frame


def _frames(client: bool) -> list[tuple[bytes, bool]]:
    """(frame bytes, is ngate's own pong) for a mix of sizes and opcodes."""
    p = FrameProtocol(client=client, extensions=[])
    out = [(bytes(p.send_data("hi")), False), (bytes(p.send_data(b"x" * 200)), False),
           (bytes(p.send_data(b"y" * 70000)), False), (bytes(p.pong(PING_PAYLOAD)), True),
           (bytes(p.pong(b"other-payload-x")), False), (bytes(p.ping(b"app")), False),
           (bytes(p.send_data("part", fin=False)), False), (bytes(p.send_data("end")), False),
           (bytes(p.pong(b"")), False), (bytes(p.send_data(b"")), False)]
    return out


@pytest.mark.parametrize("client", [True, False])
@pytest.mark.parametrize("seed", range(20))
def test_any_split_forwards_everything_but_own_pongs(client, seed):
    rnd = random.Random(seed)
    frames = _frames(client) * 2
    rnd.shuffle(frames)
    stream = b"".join(f for f, _ in frames)
    expected = b"".join(f for f, own in frames if not own)
    sc = FrameScanner()
    out, pos = [], 0
    ends = set()
    acc = 0
    for f, own in frames:
        acc += len(f)
        ends.add(acc)
    while pos < len(stream):
        step = rnd.choice([1, 2, 3, 7, 100, 5000, 100000])
        out.append(sc.scan(stream[pos:pos + step]))
        pos += step
        if pos in ends:
            assert sc.at_boundary
    assert b"".join(out) == expected
    assert sc.own_pongs == 2 and sc.at_boundary


def test_mid_frame_is_not_a_boundary():
    frame = bytes(FrameProtocol(client=False, extensions=[]).send_data(b"z" * 1000))
    sc = FrameScanner()
    assert sc.scan(frame[:500]) == frame[:500]
    assert not sc.at_boundary
    assert sc.scan(frame[500:]) == frame[500:] and sc.at_boundary


def test_own_frames_masked_only_toward_the_backend():
    assert ping_frame(False) == b"\x89\x0f" + PING_PAYLOAD
    assert ping_frame(True)[1] == 0x80 | len(PING_PAYLOAD)
    assert close_frame(False) == b"\x88\x02\x03\xe9"
    assert close_frame(True)[1] & 0x80


def _parsed(frame: bytes, client: bool) -> list:
    """Frames as wsproto's receiving side sees them (a client receives unmasked frames)."""
    p = FrameProtocol(client=client, extensions=[])
    p.receive_bytes(frame)
    return list(p.received_frames())


def test_own_frames_parse_as_rfc6455_control_frames():
    for to_backend in (False, True):
        (ping,) = _parsed(ping_frame(to_backend), client=not to_backend)
        assert ping.opcode.name == "PING" and ping.payload == PING_PAYLOAD
        (close,) = _parsed(close_frame(to_backend, 1001, "bye"), client=not to_backend)
        assert close.opcode.name == "CLOSE" and close.payload == (1001, "bye")


@pytest.mark.parametrize("client", [True, False])
def test_one_whole_frame_per_read(client):
    """The one-frame fast path: small frames pass as they are, ngate's own pong is still
    dropped, a foreign pong of the same length passes."""
    sc = FrameScanner()
    for frame, own in _frames(client):
        assert sc.scan(frame) == (b"" if own else frame)
        assert sc.at_boundary
    assert sc.own_pongs == 1
