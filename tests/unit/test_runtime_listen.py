"""What a listening socket works out once for all its connections (server/runtime.py ListenState):
$server_addr/$server_port of a socket bound to one address, the kernel's answer on a wildcard
one; and the backlog uvloop listens with is the listen directive's, as nginx's."""
from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import subprocess

import pytest
import uvloop

from ngate.server.runtime import WorkerRuntime, _local_address
from ngate.supervisor.listeners import config_listens
from tests.unit._config_helpers import load_http


@pytest.mark.parametrize("key, local", [
    (("127.0.0.1", 8080), ("127.0.0.1", "8080")),
    (("::1", 8443), ("::1", "8443")),
    (("0.0.0.0", 80), None),            # wildcard: which address the client reached varies
    (("::", 80), None),
    (("unix", "/run/ngate.sock"), None),
    (("localhost", 80), None),          # not an address: the kernel tells
    (("127.000.000.001", 80), None),    # not in the form getsockname() gives
])
def test_local_address(key, local):
    assert _local_address(key) == local


def _serve(tmp_path, listen_host: str, directive_host: str, backlog: int | None):
    """Start a runtime on one socket; return (response body, the socket's backlog per `ss`)."""
    sock = socket.socket()
    sock.bind((listen_host, 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    extra = f" backlog={backlog}" if backlog else ""
    config = load_http(tmp_path, f"""
        access_log off;
        server {{
            listen {directive_host}:{port}{extra};
            location / {{ return 200 "$server_addr:$server_port"; }}
        }}""")
    key = next(iter(config_listens(config)))

    async def scenario():
        runtime = WorkerRuntime(config, {key: sock}, asyncio.get_running_loop())
        await runtime.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
            return answer.split(b"\r\n\r\n", 1)[1].decode(), _ss_backlog(port)
        finally:
            runtime.abort()

    threshold = gc.get_threshold()
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(scenario()), port
    finally:
        gc.unfreeze()               # WorkerRuntime.start() froze the test process's objects
        gc.set_threshold(*threshold)
        loop.close()
        sock.close()


def _ss_backlog(port: int) -> int:
    """A listening socket's backlog: the Send-Q column of `ss -lnt`."""
    ss = shutil.which("ss") or "/usr/bin/ss"
    out = subprocess.run([ss, "-Hlnt", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[2])


def test_server_addr_on_an_address_and_the_listen_backlog(tmp_path):
    (body, backlog), port = _serve(tmp_path, "127.0.0.1", "127.0.0.1", 1234)
    assert body == f"127.0.0.1:{port}"
    assert backlog == 1234


def test_server_addr_on_a_wildcard_listen_and_the_default_backlog(tmp_path):
    (body, backlog), port = _serve(tmp_path, "0.0.0.0", "*", None)
    assert body == f"127.0.0.1:{port}"
    assert backlog == 511


@pytest.mark.parametrize("stub", [False, True])
def test_fast_heads_only_without_stub_status(tmp_path, stub):
    """data_received takes a whole head from the table without a parse only when stub_status
    does not count heads (its Reading count needs _feed_head's way): ListenState.fast_heads is
    the head table, or an empty one; the head table itself is the same either way, and the
    counts see every request."""
    from ngate.server.connection import HttpConnection
    from tests.harness.fake_transport import FakeTransport

    loc = "stub_status;" if stub else 'return 200 "x";'
    config = load_http(tmp_path, f"""
        access_log off;
        error_log {tmp_path}/logs/error.log;
        server {{ listen 127.0.0.1:8080; location / {{ {loc} }} }}
    """)
    loop = uvloop.new_event_loop()
    runtime = WorkerRuntime(config, {}, loop)
    ls = next(iter(runtime.listens.values()))
    assert (ls.fast_heads is ls.heads) is not stub
    assert ls.fast_heads == ({} if stub else ls.heads)
    head = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    conn = HttpConnection(runtime, ls)
    t = FakeTransport()

    async def run() -> None:
        conn.connection_made(t)
        for _ in range(3):
            conn.data_received(head)
            runtime.client_writes.flush()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert head in ls.heads and conn.requests == 3
    if stub:
        out = b"".join(t.written) if hasattr(t, "written") else b""
        assert out.count(b"HTTP/1.1 200") == 3 and b"Reading: 0 Writing: 1" in out
