"""server/tls_transport.py's TlsTransport on a real loopback TCP connection with a real TLS
client (a thread with a blocking ssl socket): write flow control to the protocol, pause and
resume of reading, close with close_notify, abort without it, no per-connection buffer held
while idle (OpenSSL releases its record buffers: SSL_MODE_RELEASE_BUFFERS), and a TLS 1.3
KeyUpdate whose answer meets a full socket (the read waits for writability)."""
from __future__ import annotations

import asyncio
import ctypes
import gc
import hashlib
import socket
import ssl
import threading

import pytest
import trustme
import uvloop

from ngate.server import tls_transport
from ngate.server.tls_transport import TlsTransport

_SSL_CTRL_MODE = 33
_SSL_MODE_RELEASE_BUFFERS = 0x10


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.events: list = []
        self.lost = asyncio.get_event_loop().create_future()

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
        self.lost.set_result(exc)


@pytest.fixture(scope="module")
def certs():
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("tls.test").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.fixture
def loop():
    lp = uvloop.new_event_loop()
    asyncio.set_event_loop(lp)
    yield lp
    lp.close()
    asyncio.set_event_loop(None)


def connect(loop, certs, small_buffers=False, loop_for_transport=None):
    """-> (transport, protocol, client ssl socket) after a handshake on loopback TCP.
    small_buffers: small kernel buffers both ways, so that a few hundred KiB fill them."""
    server_ctx, client_ctx = certs
    listener = socket.create_server(("127.0.0.1", 0))
    out = {}

    def run_client():
        raw = socket.socket()
        if small_buffers:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(10)
        raw.connect(listener.getsockname())
        out["client"] = client_ctx.wrap_socket(raw, server_hostname="tls.test",
                                               suppress_ragged_eofs=False)

    t = threading.Thread(target=run_client)
    t.start()
    sock, peer = listener.accept()
    listener.close()
    if small_buffers:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    obj = ssl.SSLObject.__new__(ssl.SSLObject)
    obj._sslobj = server_ctx._wrap_socket(sock, server_side=True, owner=obj)
    obj.do_handshake()                      # blocking: the client thread answers
    t.join()
    sock.setblocking(False)
    transport = TlsTransport(loop_for_transport or loop, sock, obj, peer)
    proto = Recorder()
    transport.start(proto)
    return transport, proto, out["client"]


def run_until(loop, predicate, limit: int = 2000) -> None:
    for _ in range(limit):
        if predicate():
            return
        loop.run_until_complete(asyncio.sleep(0.005))
    raise AssertionError("condition not reached")


def in_thread(fn):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("v", fn()))
    t.start()
    return t, result


def test_reads_writes_and_extra_info(loop, certs):
    transport, proto, client = connect(loop, certs)
    client.sendall(b"hello")
    run_until(loop, lambda: proto.data == b"hello")
    transport.write(b"wor")
    transport.writelines([b"l", b"d"])
    got = b""
    while len(got) < 5:                         # one TLS record per write
        got += client.recv(100)
    assert got == b"world"
    assert transport.get_extra_info("peername") == client.getsockname()
    assert transport.get_extra_info("sockname") == client.getpeername()
    assert transport.get_extra_info("ssl_object").version() == "TLSv1.3"
    assert transport.get_extra_info("socket").fileno() >= 0
    assert transport.get_extra_info("nothing", 7) == 7
    transport.abort()
    client.close()


def test_write_flow_control_and_no_data_lost(loop, certs):
    transport, proto, client = connect(loop, certs)
    piece = bytes(range(256)) * 4096                 # 1 MiB
    total = 16 * len(piece)
    expected = hashlib.sha256(piece * 16).hexdigest()
    for _ in range(16):                              # the client reads nothing yet
        transport.write(bytearray(piece))            # a buffer the caller may reuse
    assert proto.events[-1] == "pause"
    assert transport.get_write_buffer_size() > 64 * 1024
    assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)

    def read_all():
        digest, got = hashlib.sha256(), 0
        while got < total:
            more = client.recv(1 << 20)
            if not more:
                break
            digest.update(more)
            got += len(more)
        return got, digest.hexdigest()

    t, result = in_thread(read_all)
    run_until(loop, lambda: transport.get_write_buffer_size() == 0)
    t.join()
    assert result["v"] == (total, expected)
    assert proto.events == ["made", "pause", "resume"]
    transport.abort()
    client.close()


def test_pause_and_resume_reading(loop, certs):
    transport, proto, client = connect(loop, certs)
    transport.pause_reading()
    assert not transport.is_reading()
    client.sendall(b"held")
    for _ in range(20):
        loop.run_until_complete(asyncio.sleep(0.005))
    assert proto.data == b""
    transport.resume_reading()
    assert transport.is_reading()
    run_until(loop, lambda: proto.data == b"held")
    transport.abort()
    client.close()


def test_close_sends_close_notify_after_queued_data(loop, certs):
    transport, proto, client = connect(loop, certs)
    body = b"x" * (4 * 1024 * 1024)
    transport.write(body)                       # more than the socket takes at once
    transport.close()
    assert transport.is_closing()

    def read_to_close_notify():
        got = b""
        while True:
            more = client.recv(1 << 20)     # b"" only on close_notify (ragged EOFs raise)
            if not more:
                return got
            got += more

    t, result = in_thread(read_to_close_notify)
    run_until(loop, lambda: proto.lost.done())
    t.join()
    assert result["v"] == body
    assert proto.lost.result() is None
    client.close()


def test_abort_closes_without_close_notify(loop, certs):
    transport, proto, client = connect(loop, certs)
    transport.abort()
    run_until(loop, lambda: proto.lost.done())
    with pytest.raises(ssl.SSLEOFError):
        client.recv(100)
    client.close()


def test_peer_close_notify_is_eof(loop, certs):
    transport, proto, client = connect(loop, certs)
    t, result = in_thread(client.unwrap)        # close_notify, then waits for ours
    run_until(loop, lambda: proto.lost.done())
    t.join()
    assert proto.events[-2:] == ["eof", "lost"]
    assert "v" in result                        # ours came: unwrap returned
    client.close()


def test_idle_connection_holds_no_read_buffer(loop, certs):
    transport, proto, client = connect(loop, certs)
    client.sendall(b"x" * 100_000)              # several full records
    run_until(loop, lambda: len(proto.data) == 100_000)
    transport.write(b"y" * 100_000)
    assert len(client.recv(200_000)) > 0
    # what the transport refers to is small: one worker-wide buffer serves every connection
    held = [o for o in gc.get_referents(transport)
            if isinstance(o, (bytes, bytearray, memoryview, list))]
    assert held == []
    assert len(tls_transport._BUF) == tls_transport.RECORD
    # and OpenSSL frees its record buffers between records
    import _ssl
    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_ctrl.restype = ctypes.c_long
    lib.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    from ngate.server import openssl
    ssl_ptr = openssl._ssl_of(transport.get_extra_info("ssl_object"))
    assert lib.SSL_ctrl(ssl_ptr, _SSL_CTRL_MODE, 0, None) & _SSL_MODE_RELEASE_BUFFERS
    transport.abort()
    client.close()


def test_a_failing_protocol_is_reported_and_aborted(loop, certs):
    transport, proto, client = connect(loop, certs)
    seen = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context["exception"]))

    def boom(data):
        raise ValueError("bad")

    proto.data_received = boom
    client.sendall(b"x")
    run_until(loop, lambda: proto.lost.done())
    assert [type(e) for e in seen] == [ValueError]
    client.close()


# ------------------------------------------------------------ SSL_read that must write first

_SSL_KEY_UPDATE_REQUESTED = 1


def key_update(client) -> None:
    """The client's next record is a TLS 1.3 KeyUpdate asking for ours (Python's ssl has no API
    for it: SSL_key_update through ctypes on the client's SSL*)."""
    from ngate.server import openssl
    fn = openssl._lib.SSL_key_update
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]
    assert fn(openssl._ssl_of(client), _SSL_KEY_UPDATE_REQUESTED) == 1


def test_key_update_while_the_socket_is_full(loop, certs):
    """The server's socket is full (the client reads nothing) when the client's KeyUpdate
    (update requested) arrives. OpenSSL 3 answers it with the next SSL_write, before that
    write's data: once the client reads, everything queued arrives in order, then the request
    after the KeyUpdate is read and a reply goes out under the new keys."""
    transport, proto, client = connect(loop, certs, small_buffers=True)
    piece = bytes(range(256)) * 1024                    # 256 KiB, far more than the buffers
    for _ in range(4):
        transport.write(piece)
    assert transport.get_write_buffer_size() > 0        # the socket is full
    key_update(client)
    client.sendall(b"ping")                             # KeyUpdate, then the data record
    run_until(loop, lambda: proto.data == b"ping")
    transport.write(b"pong")                            # queued behind the rest

    def read_all():
        got = b""
        while len(got) < 4 * len(piece) + 4:
            got += client.recv(1 << 20)
        return got

    t, result = in_thread(read_all)
    run_until(loop, lambda: transport.get_write_buffer_size() == 0)
    t.join()
    assert result["v"] == piece * 4 + b"pong"
    key_update(client)                                  # and again, with the socket empty
    client.sendall(b"again")
    run_until(loop, lambda: proto.data == b"pingagain")
    transport.write(b"ok")
    assert client.recv(100) == b"ok"
    transport.abort()
    client.close()


class RecordingLoop:
    """The loop, with the transport's watch calls recorded."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self.calls: list = []

    def __getattr__(self, name):
        attr = getattr(self.loop, name)
        if name in ("add_reader", "remove_reader", "add_writer", "remove_writer"):
            def record(fd, *args):
                self.calls.append(name)
                return attr(fd, *args)
            return record
        return attr


class WantsWriteOnce:
    """The connection's SSL object whose next read reports SSL_WANT_WRITE (as a KeyUpdate's
    answer meeting a full socket does) without reading."""

    def __init__(self, tls) -> None:
        self.tls = tls
        self.reads = 0

    def read(self, *args):
        self.reads += 1
        if self.reads == 1:
            raise ssl.SSLWantWriteError("the socket is full")
        return self.tls.read(*args)

    def __getattr__(self, name):
        return getattr(self.tls, name)


def test_read_that_wants_to_write_waits_for_writability(loop, certs):
    """SSL_WANT_WRITE from a read with nothing queued: no reader until the socket is writable
    (a readable event would only retry while the socket is full), then reading goes on.
    OpenSSL 3 defers what a read would make it write (a KeyUpdate's answer, a no_renegotiation
    alert) to the next SSL_write, so the SSL object reports it here (as nginx handles the case
    in ngx_ssl_handle_recv)."""
    recording = RecordingLoop(loop)
    transport, proto, client = connect(loop, certs, loop_for_transport=recording)
    shim = transport._tls = WantsWriteOnce(transport._tls)
    client.sendall(b"data")
    recording.calls.clear()
    transport._read_ready()                     # as the readable event would
    assert recording.calls == ["remove_reader", "add_writer"]
    assert proto.data == b""
    run_until(loop, lambda: proto.data == b"data")     # from the writable event, at once
    assert recording.calls[2:4] == ["remove_writer", "add_reader"]
    assert shim.reads >= 2
    transport.write(b"ok")
    assert client.recv(10) == b"ok"
    transport.abort()
    client.close()
