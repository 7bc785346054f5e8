"""server/tls_transport.py's TlsTransport on a real loopback TCP connection with a real TLS
client (a thread with a blocking ssl socket): write flow control to the protocol, pause and
resume of reading, close with close_notify, abort without it, and no per-connection buffer
held while idle (OpenSSL releases its record buffers: SSL_MODE_RELEASE_BUFFERS)."""
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


def connect(loop, certs):
    """-> (transport, protocol, client ssl socket) after a handshake on loopback TCP."""
    server_ctx, client_ctx = certs
    listener = socket.create_server(("127.0.0.1", 0))
    out = {}

    def run_client():
        raw = socket.create_connection(listener.getsockname(), timeout=10)
        out["client"] = client_ctx.wrap_socket(raw, server_hostname="tls.test",
                                               suppress_ragged_eofs=False)

    t = threading.Thread(target=run_client)
    t.start()
    sock, peer = listener.accept()
    listener.close()
    obj = ssl.SSLObject.__new__(ssl.SSLObject)
    obj._sslobj = server_ctx._wrap_socket(sock, server_side=True, owner=obj)
    obj.do_handshake()                      # blocking: the client thread answers
    t.join()
    sock.setblocking(False)
    transport = TlsTransport(loop, sock, obj, peer)
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
