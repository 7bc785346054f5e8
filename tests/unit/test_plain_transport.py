"""server/plain_transport.py on real loopback TCP connections under uvloop: the accept, reads and
writes on the raw socket, write flow control, pause/resume of reading, close after the buffered
bytes, abort, half-close (write_eof, reading on), EOF and reset from the peer, the accept error
pause (nginx's 500 ms), and the hand-over of an idle connection to uvloop's transport with the
protocol's bytes and references intact."""
from __future__ import annotations

import asyncio
import errno
import socket
import time

import pytest
import uvloop

from ngate.server import plain_transport
from ngate.server.plain_transport import PlainServer, PlainTransport, Poller


class Recorder(asyncio.Protocol):
    idle = False        # can_hand_over's answer (only HandOver defines it)

    def __init__(self) -> None:
        self.data = b""
        self.events: list = []
        self.lost = None
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc) -> None:
        self.events.append("lost")
        self.lost = exc


class HandOver(Recorder):
    def can_hand_over(self) -> bool:
        return self.idle

    def transport_adopted(self, old, new) -> None:
        self.events.append("adopted")
        assert self.transport is old
        self.transport = new


@pytest.fixture
def loop():
    lp = uvloop.new_event_loop()
    asyncio.set_event_loop(lp)
    yield lp
    lp.close()
    asyncio.set_event_loop(None)


def run_until(loop, cond, timeout=3.0) -> None:
    async def wait():
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError("timed out")
            await asyncio.sleep(0.005)
    loop.run_until_complete(wait())


def serve(loop, protocol_cls=Recorder):
    """-> (server, poller, protocols list, port)."""
    listener = socket.create_server(("127.0.0.1", 0))
    protocols = []

    def factory():
        p = protocol_cls()
        protocols.append(p)
        return p
    poller = Poller(loop)
    server = PlainServer(loop, listener, 16, factory, poller)
    return server, poller, protocols, listener.getsockname()[1]


def client(port, small=False) -> socket.socket:
    c = socket.socket()
    if small:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", port))
    c.settimeout(3)
    return c


def test_read_write_close_and_extra_info(loop):
    server, poller, protos, port = serve(loop)
    c = client(port)
    run_until(loop, lambda: protos)
    p = protos[0]
    assert p.events == ["made"] and isinstance(p.transport, PlainTransport)
    assert p.transport.get_extra_info("peername") == c.getsockname()
    assert p.transport.get_extra_info("sockname") == c.getpeername()
    c.sendall(b"hello")
    run_until(loop, lambda: p.data == b"hello")
    p.transport.write(b"one ")
    p.transport.write(memoryview(b"two"))       # a second write: TCP_NODELAY is set first
    sock = p.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    p.transport.close()
    assert p.transport.is_closing()
    run_until(loop, lambda: "lost" in p.events)
    assert p.lost is None
    got = b""
    while True:
        chunk = c.recv(100)
        if not chunk:
            break
        got += chunk
    assert got == b"one two"
    assert not poller.handlers
    server.close()


def test_write_flow_control_and_close_after_buffered_bytes(loop):
    server, poller, protos, port = serve(loop)
    c = client(port, small=True)
    run_until(loop, lambda: protos)
    p, t = protos[0], protos[0].transport
    t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    t.set_write_buffer_limits(high=64 * 1024)
    assert t.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
    blob = bytes(range(256)) * 4096                # 1 MiB: more than the socket takes
    t.write(blob)
    assert t.get_write_buffer_size() > 64 * 1024 and p.events[-1] == "pause"
    t.close()                                       # closes once the buffered bytes are out
    got = bytearray()
    c.setblocking(False)

    def drain():
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return True
                got.extend(chunk)
        except BlockingIOError:
            return False
    run_until(loop, drain)
    assert bytes(got) == blob
    assert "resume" in p.events and p.events[-1] == "lost" and p.lost is None
    server.close()


def test_pause_resume_reading_and_peer_eof(loop):
    server, poller, protos, port = serve(loop)
    c = client(port)
    run_until(loop, lambda: protos)
    p, t = protos[0], protos[0].transport
    t.pause_reading()
    assert not t.is_reading()
    c.sendall(b"held")
    loop.run_until_complete(asyncio.sleep(0.05))
    assert p.data == b""
    t.resume_reading()
    run_until(loop, lambda: p.data == b"held")
    c.shutdown(socket.SHUT_WR)
    run_until(loop, lambda: "lost" in p.events)
    assert p.events == ["made", "eof", "lost"] and p.lost is None
    server.close()


def test_half_close_keeps_reading(loop):
    server, poller, protos, port = serve(loop)
    c = client(port)
    run_until(loop, lambda: protos)
    p, t = protos[0], protos[0].transport
    t.write(b"bye")
    t.write_eof()
    assert c.recv(10) == b"bye" and c.recv(10) == b""      # the client sees the end at once
    assert not t.is_closing()
    t.write(b"dropped")                                     # nothing after write_eof
    c.sendall(b"late")                                      # lingering: still read
    run_until(loop, lambda: p.data == b"late")
    c.close()
    run_until(loop, lambda: "lost" in p.events)
    server.close()


def test_reset_by_peer_and_abort(loop):
    server, poller, protos, port = serve(loop)
    c = client(port)
    c2 = client(port)
    run_until(loop, lambda: len(protos) == 2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()                                               # RST
    p = next(x for x in protos if x.transport.get_extra_info("peername")[1] != c2.getsockname()[1])
    run_until(loop, lambda: "lost" in p.events)
    assert isinstance(p.lost, ConnectionResetError)
    q = next(x for x in protos if x is not p)
    q.transport.write(b"x" * 10)
    q.transport.abort()
    run_until(loop, lambda: "lost" in q.events)
    assert q.lost is None
    server.close()


def test_accept_error_pauses_accepting(loop, monkeypatch):
    alerts = []
    monkeypatch.setattr(plain_transport.error_log, "crit", alerts.append)
    listener = socket.create_server(("127.0.0.1", 0))
    poller = Poller(loop)
    protos = []

    class Failing:
        calls = 0

        def __init__(self, sock) -> None:
            self.sock = sock

        def _accept(self):
            Failing.calls += 1
            if Failing.calls == 1:
                raise OSError(errno.EMFILE, "Too many open files")
            return self.sock._accept()

        def __getattr__(self, name):
            return getattr(self.sock, name)
    server = PlainServer(loop, Failing(listener), 16, lambda: protos.append(Recorder())
                         or protos[-1], poller)
    client(listener.getsockname()[1])
    run_until(loop, lambda: alerts)
    assert alerts == ["accept4() failed (24: Too many open files)"]     # nginx's [crit]
    started = time.monotonic()
    run_until(loop, lambda: protos)
    assert time.monotonic() - started > 0.3            # accepting again after 500 ms
    server.close()


def test_hand_over_to_uvloop(loop):
    server, poller, protos, port = serve(loop, HandOver)
    c = client(port)
    run_until(loop, lambda: protos)
    p = protos[0]
    plain = p.transport
    c.sendall(b"first")
    run_until(loop, lambda: p.data == b"first")
    plain.write(b"answer")
    assert c.recv(10) == b"answer"
    p.idle = True
    c.sendall(b"second")                            # the read after a response: handed over
    run_until(loop, lambda: p.data == b"firstsecond")
    assert "adopted" in p.events and p.transport is not plain
    assert not poller.handlers
    assert plain.get_extra_info("peername") == c.getsockname()
    p.transport.write(b"again")
    assert c.recv(10) == b"again"
    c.close()
    run_until(loop, lambda: "lost" in p.events)
    server.close()


def test_close_while_handing_over(loop):
    server, poller, protos, port = serve(loop, HandOver)
    c = client(port)
    run_until(loop, lambda: protos)
    p = protos[0]
    plain = p.transport
    plain.write(b"answer")
    p.idle = True
    c.sendall(b"next")
    run_until(loop, lambda: plain._state != plain_transport._OPEN)
    assert p.data == b"next"
    plain.write(b"last")                            # kept for uvloop's transport, then closed
    plain.close()
    run_until(loop, lambda: "lost" in p.events)
    assert c.recv(20) == b"answerlast" and c.recv(10) == b""
    server.close()


def test_server_close_stops_accepting(loop):
    server, poller, protos, port = serve(loop)
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


# ---------------------------------------------------------------- upstream/connect.py PlainConnect

class FakeExchange:
    def __init__(self, freed: bool = False) -> None:
        self.got = []
        self.freed = freed          # take_freed's answer: a connection freed in the turn

    def take_freed(self) -> bool:
        self.got.append(("take_freed", self.freed))
        return self.freed

    def connected(self, proto) -> None:
        self.got.append(("connected", proto))

    def connect_error(self, exc) -> None:
        self.got.append(("error", exc))


class Peer:
    def __init__(self, port, host="127.0.0.1") -> None:
        self.host, self.port, self.unix = host, port, None


def test_plain_connect_made_refused_and_cancelled(loop):
    from ngate.proxy.upstream_conn import UpstreamConnection
    from ngate.upstream.connect import PlainConnect
    poller = Poller(loop)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ex = FakeExchange()
    PlainConnect(ex, Peer(port), poller)
    run_until(loop, lambda: ex.got)
    kind, proto = ex.got[0]
    assert kind == "connected" and isinstance(proto, UpstreamConnection)
    t = proto.transport
    assert isinstance(t, PlainTransport) and t.get_extra_info("peername") == ("127.0.0.1", port)
    server_side, _ = listener.accept()
    t.write(b"GET / HTTP/1.1\r\n\r\n")
    assert server_side.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    t.close()
    # refused: the errno nginx logs ("connect() failed (111: Connection refused)")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    dead = free.getsockname()[1]
    free.close()
    ex2 = FakeExchange()
    PlainConnect(ex2, Peer(dead), poller)
    run_until(loop, lambda: ex2.got)
    kind, exc = ex2.got[0]
    assert kind == "error" and exc.errno == errno.ECONNREFUSED
    assert exc.strerror == "Connection refused"
    # cancelled before it began, and while connecting: nothing told, no socket left watched
    ex3 = FakeExchange()
    PlainConnect(ex3, Peer(port), poller).cancel()
    ex4 = FakeExchange()
    c4 = PlainConnect(ex4, Peer(port), poller)
    c4._connect()                   # (what the loop runs next: the socket is connecting)
    assert c4.sock is not None and poller.handlers
    c4.cancel()
    loop.run_until_complete(asyncio.sleep(0.05))
    assert ex3.got == [] and ex4.got == [] and not poller.handlers
    listener.close()


def test_plain_connect_takes_a_connection_freed_in_its_turn(loop):
    """repool (connect() found the pool empty): the first step asks the exchange for a
    connection a response of the turn freed (exchange_peer.py take_freed) and opens none when
    it got one; without one, or without repool, it connects."""
    from ngate.upstream.connect import PlainConnect
    poller = Poller(loop)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    taken = FakeExchange(freed=True)
    c = PlainConnect(taken, Peer(port), poller, True)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert taken.got == [("take_freed", True)] and c.sock is None and not poller.handlers
    for ex, repool in ((FakeExchange(), True), (FakeExchange(freed=True), False)):
        PlainConnect(ex, Peer(port), poller, repool)
        run_until(loop, lambda: any(k == "connected" for k, _ in ex.got))
        assert [k for k, _ in ex.got] == (["take_freed", "connected"] if repool else ["connected"])
        ex.got[-1][1].transport.close()
    listener.close()


def test_tunnel_side_hand_over_swaps_the_tunnels_references():
    """proxy/tunnel.py Side: a tunnel's transport handed to uvloop is replaced where the tunnel
    holds it (its own end, and the other side's peer that writes into it)."""
    from ngate.proxy.tunnel import Side, Tunnel
    t = object.__new__(Tunnel)
    old_client, old_upstream, new = object(), object(), object()
    t.client, t.upstream, t.closed = old_client, old_upstream, False
    t.from_client = Side(t, old_upstream, True)         # reads the client, writes upstream
    t.from_upstream = Side(t, old_client, False)
    assert t.from_client.can_hand_over()
    t.from_client.transport_adopted(old_client, new)
    assert t.client is new and t.from_upstream.peer is new
    assert t.upstream is old_upstream and t.from_client.peer is old_upstream
    t.closed = True
    assert not t.from_upstream.can_hand_over()


def test_tunnel_closed_while_handing_over_takes_the_new_transport_quietly():
    """A tunnel that closed between a side's hand-over offer and uvloop's transport (close()
    clears the sides and transports) has nothing to swap: found by a request fuzz, where the
    swap's AttributeError went to the loop's exception handler."""
    from ngate.proxy.tunnel import Side, Tunnel
    t = object.__new__(Tunnel)
    old_client, old_upstream, new = object(), object(), object()
    t.client, t.upstream, t.closed = old_client, old_upstream, False
    side = t.from_client = Side(t, old_upstream, True)
    t.from_upstream = Side(t, old_client, False)
    assert side.can_hand_over()
    t.closed = True                     # Tunnel.close() meanwhile
    t.from_client = t.from_upstream = t.client = t.upstream = None
    side.transport_adopted(old_client, new)
    assert t.client is None and t.from_client is None


def test_idle_raw_upstream_connection_goes_to_uvloop_on_a_quiet_tick(loop):
    """upstream/pool.py: a raw-socket upstream connection is remembered at its first time in
    the pool; at a tick of the coarse deadlines on a quiet loop (since the last tick at most
    QUIET_BUSY_TURNS turns wrote more than one request head: HeadWrites.busy_turns) it is
    handed to uvloop's transport if idle (not after more busy turns, nor while in use); a request written
    while it is being handed over is kept and sent; the peer's close then reaches the pool; a
    closed raw one is forgotten, and the pool is no longer watched once none is left."""
    from ngate.server.clock import Deadlines
    from ngate.upstream.connect import PlainConnect
    from ngate.upstream.pool import NEVER, QUIET_BUSY_TURNS, KeepalivePool
    poller = Poller(loop)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    exs = [FakeExchange(), FakeExchange()]
    for ex in exs:
        PlainConnect(ex, Peer(port), poller)
    run_until(loop, lambda: all(ex.got for ex in exs))
    proto, other = (ex.got[0][1] for ex in exs)
    plain = proto.transport
    server_side, _ = listener.accept()
    server_side.settimeout(3)
    deadlines = Deadlines(loop)
    pool = KeepalivePool(deadlines)
    key = (1, "127.0.0.1", port)
    pool.put(key, proto, 32, 60.0)
    pool.put(key, other, 32, 60.0)
    assert pool.raw == {proto, other} and pool in deadlines.watched
    other.close()                                   # closed: forgotten at the next tick
    hw = pool.head_writes
    for _ in range(QUIET_BUSY_TURNS + 1):           # turns of two heads: kept on the Poller
        hw.count = 2
        hw.turn_end()
    hw.turn_end()                                   # (then a quiet one: still since the tick)
    deadlines._tick()
    assert pool.raw == {proto} and plain._state is plain_transport._OPEN
    assert pool in deadlines.watched
    assert pool.get(key) is proto                   # in use: not now
    for _ in range(QUIET_BUSY_TURNS):               # a few busy turns: still quiet
        hw.count = 2
        hw.turn_end()
    deadlines._tick()
    assert pool.raw == {proto} and plain._state is plain_transport._OPEN
    pool.put(key, proto, 32, 60.0)
    deadlines._tick()
    assert not pool.raw and pool.deadline is NEVER and pool not in deadlines.watched
    assert plain._state is plain_transport._HANDING and not poller.handlers
    assert pool.get(key) is proto
    proto.transport.write(b"GET / HTTP/1.1\r\n\r\n")       # kept until uvloop's is made
    run_until(loop, lambda: proto.transport is not plain)
    assert plain._state is plain_transport._ADOPTED and not isinstance(proto.transport,
                                                                       PlainTransport)
    assert server_side.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    proto.transport.write(b"x")
    assert server_side.recv(10) == b"x"
    pool.put(key, proto, 32, 60.0)
    assert not pool.raw
    server_side.close()                                     # the peer closes the idle one
    run_until(loop, lambda: proto.closed)
    assert pool.get(key) is None
    deadlines.close()
    listener.close()
