"""Bounded memory for big bodies through ngate (its worker's RSS, read from /proc while the
transfer runs): a download, a Content-Length upload (streamed), a chunked upload read whole
(proxy_request_buffering on: spilled to a temp file over client_body_buffer_size) and a chunked
upload streamed (proxy_request_buffering off). ngate only: nginx's memory is not in question.

Each transfer is 1 GiB (about 2 s each on a 2-core machine); NGATE_MEM_MIB sets another size.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.harness.stream_backend import StreamBackend
from tests.harness.processes import ProxyProcess, fresh_prefix

SIZE = int(os.environ.get("NGATE_MEM_MIB", "1024")) << 20
LIMIT = 100 << 20      # allowed RSS growth

CONF = """
http {
    client_max_body_size 0;
    server {
        listen 127.0.0.1:{port};
        location / { proxy_pass http://127.0.0.1:{backend_port}; }
        location /nb/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_request_buffering off;
        }
    }
}
"""


def worker_pid(master: int) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    return master       # single-process mode


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssWatch:
    """Samples a process's RSS every 50 ms in a thread; `peak` and `start` in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss(pid)
        self.peak = self.start
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.05)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak - self.start


@pytest.fixture(scope="module")
def ngate(tmp_path_factory):
    backend = StreamBackend()
    proc = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path_factory.mktemp("mem"), "ngate"),
                        backend_port=backend.port).start()
    yield proc, backend
    proc.stop()
    backend.close()


def test_download_in_bounded_memory(ngate):
    proxy, _ = ngate
    watch = RssWatch(worker_pid(proxy.proc.pid))
    got = 0
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"GET /big?%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % SIZE)
        buf = bytearray(1 << 20)
        while n := s.recv_into(buf):
            got += n
    growth = watch.stop()
    print(f"download of {SIZE} bytes: worker RSS grew {growth} bytes")
    assert got > SIZE and growth < LIMIT, (got, growth)


@pytest.mark.parametrize("path,framing", [("/up", "length"), ("/up", "chunked"),
                                          ("/nb/up", "chunked")])
def test_upload_in_bounded_memory(ngate, path, framing):
    proxy, backend = ngate
    watch = RssWatch(worker_pid(proxy.proc.pid))
    block = b"u" * (1 << 20)
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        if framing == "length":
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), SIZE))
            for _ in range(SIZE // len(block)):
                s.sendall(block)
        else:
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % path.encode())
            chunk = b"%x\r\n%b\r\n" % (len(block), block)
            for _ in range(SIZE // len(block)):
                s.sendall(chunk)
            s.sendall(b"0\r\n\r\n")
        s.settimeout(30)
        answer = s.recv(1000)
    growth = watch.stop()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\n%d" % SIZE), answer
    print(f"{framing} upload of {SIZE} bytes to {path}: worker RSS grew {growth} bytes")
    assert growth < LIMIT, growth
