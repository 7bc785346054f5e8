"""plain_file's Date from the loop turn's time (server/turn_writes.py TurnClock, nginx's cached
time): read once a turn, kept only while the worker's TurnWrites has its turn_end scheduled,
cleared by it; every Date line is the time read in its turn."""
from __future__ import annotations

from bench.hotpath import STATIC_CONF, STATIC_REQUEST, FakeTransport, _runtime
from ngate.server import turn_writes
from ngate.server.connection import HttpConnection
from ngate.static import handler


def test_turn_clock(tmp_path, monkeypatch):
    root = tmp_path / "www"
    root.mkdir()
    (root / "1k.txt").write_bytes(b"x" * 1024)
    _config, loop, runtime, listen = _runtime(str(tmp_path), STATIC_CONF % root)
    turn = runtime.client_writes
    clock = turn_writes.CLOCK
    assert clock.turn is turn and clock.wall is None
    reads = []
    times = iter([1_800_000_000.25, 1_800_000_001.5, 1_800_000_002.5, 1_800_000_003.5,
                  1_800_000_004.5])         # (outside the Date line's second: _date() reads
    #                                           the clock for the line itself, as before)

    def fake_time():
        reads.append(1)
        return next(times)
    monkeypatch.setattr(handler, "_time", fake_time)
    conn = HttpConnection(runtime, listen)
    t = FakeTransport()
    t.written = []                      # every write (bench's Written keeps the last)

    async def drive():
        conn.connection_made(t)
        # the turn's first response: no turn_end scheduled yet, the time is not kept
        conn.data_received(STATIC_REQUEST)
        assert len(reads) == 1 and clock.wall is None and turn.scheduled
        # a second in the same turn (turn_end now scheduled): read and kept
        conn.data_received(STATIC_REQUEST)
        assert len(reads) == 2 and clock.wall == 1_800_000_001.5
        # a third: the turn's time, no read
        conn.data_received(STATIC_REQUEST)
        assert len(reads) == 2
        turn.flush()
        # the turn's end clears it: the next turn reads the clock again
        turn.turn_end()
        assert clock.wall is None and not turn.scheduled
        conn.data_received(STATIC_REQUEST)
        conn.data_received(STATIC_REQUEST)
        assert len(reads) == 4 and clock.wall == 1_800_000_003.5
        turn.flush()
        turn.turn_end()
        assert clock.wall is None and clock.mono is None
    loop.run_until_complete(drive())
    loop.close()
    out = b"".join(t.written)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 5 and out.count(b"\r\nDate: ") == 5


def test_turn_clock_request_start(tmp_path, monkeypatch):
    """server/request_head.py's ctx.start: the turn's monotonic time, by the same rule."""
    from ngate.server import request_head
    root = tmp_path / "www"
    root.mkdir()
    (root / "1k.txt").write_bytes(b"x")
    _config, loop, runtime, listen = _runtime(str(tmp_path), STATIC_CONF % root)
    turn = runtime.client_writes
    clock = turn_writes.CLOCK
    times = iter([10.0, 11.0, 12.0, 13.0])
    monkeypatch.setattr(request_head, "_monotonic", lambda: next(times))
    conn = HttpConnection(runtime, listen)
    t = FakeTransport()
    seen = []

    async def drive():
        conn.connection_made(t)
        for _ in range(3):
            conn.data_received(STATIC_REQUEST)
            seen.append(clock.mono)
        turn.flush()
        turn.turn_end()
        assert clock.mono is None
        conn.data_received(STATIC_REQUEST)
        conn.data_received(STATIC_REQUEST)
        seen.append(clock.mono)
        turn.flush()
        turn.turn_end()
    loop.run_until_complete(drive())
    loop.close()
    # first of the turn: read, not kept; second: read and kept; third: the kept one; the next
    # turn reads again (12.0, not kept: turn_end had cleared `scheduled`), then 13.0 kept
    assert seen == [None, 11.0, 11.0, 13.0]
