"""gunzip on an upstream's gzip bomb (HTTP and FastCGI: php-fpm): the worker's memory stays bounded (ngate's worker RSS from
/proc while the transfer runs), whether the client reads at once or only after a pause, and the
client gets every inflated byte. Also with SSI and add_before_body/add_after_body (postponed
output, filters/postpone.py), where the main response's output may wait behind a slow
subrequest (a PHP script that sleeps) instead of the client.

The backend sends BOMB_MIB MiB of zeros gzip-compressed at level 9 (about 1000:1), the whole
response in one write: before output was bounded, each 64 KiB upstream read became about 64 MiB in
the worker at once.
"""
from __future__ import annotations

import gzip
import os
import socket
import threading
import time

import pytest

from tests.e2e.test_core_memory import RssWatch, worker_pid
from tests.harness.phpfpm import PhpFpm, require_php_fpm
from tests.harness.processes import ProxyProcess, fresh_prefix

BOMB = int(os.environ.get("NGATE_BOMB_MIB", "512")) << 20
LIMIT = 48 << 20        # allowed RSS growth (the compressed body itself is ~0.5 MiB)

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            gunzip on;
        }
        location /php/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {docroot}/bomb.php;
            gunzip on;
        }
        location /ssi/ {
            proxy_pass http://127.0.0.1:{backend_port};
            gunzip on;
            ssi on;
            ssi_types *;
        }
        location /add/ {
            proxy_pass http://127.0.0.1:{backend_port};
            gunzip on;
            addition_types *;
            add_before_body /slow/;
            add_after_body /slow/;
        }
        location /slow/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {docroot}/slow.php;
        }
        location /small-buffers/ {
            proxy_pass http://127.0.0.1:{backend_port};
            gunzip on;
            gunzip_buffers 4 1k;
        }
    }
}
"""


class BombBackend:
    """Answers every request with the same gzip body (Content-Encoding: gzip), in one write."""

    def __init__(self, body: bytes) -> None:
        self.response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Encoding: gzip\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body)) + body
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        with c:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    got = c.recv(4096)
                    if not got:
                        return
                    data += got
                c.sendall(self.response)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


PHP = """<?php
header('Content-Type: application/octet-stream');
header('Content-Encoding: gzip');
header('Content-Length: ' . filesize(__DIR__ . '/bomb.gz'));
readfile(__DIR__ . '/bomb.gz');
"""


@pytest.fixture(scope="module")
def ngate(tmp_path_factory):
    require_php_fpm()
    z = gzip.compress(b"\0" * BOMB, compresslevel=9, mtime=0)
    backend = BombBackend(z)
    with PhpFpm(tmp_path_factory.mktemp("fpm"), children=2) as fpm:
        fpm.script("bomb.php", PHP)
        fpm.script("slow.php", "<?php usleep(1500000); echo 'slow';")
        (fpm.docroot / "bomb.gz").write_bytes(z)
        os.chmod(fpm.docroot / "bomb.gz", 0o644)
        proc = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path_factory.mktemp("bomb"), "ngate"),
                            backend_port=backend.port, fpm_port=fpm.port,
                            docroot=str(fpm.docroot)).start()
        try:
            yield proc, len(z)
        finally:
            proc.stop()
            backend.close()


def _download(port: int, path: str, pause: float) -> tuple[int, bytes]:
    """(bytes of body, the body's bytes that are not zeros) of an HTTP/1.0 GET (close-delimited:
    the body as it is); `pause`: seconds the client waits before reading (the proxy must hold
    off meanwhile)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.sendall(b"GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path.encode())
        time.sleep(pause)
        buf = bytearray(1 << 20)
        head = b""
        while b"\r\n\r\n" not in head:
            n = s.recv_into(buf)
            assert n, head
            head += bytes(buf[:n])
        head, _, first = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"content-encoding" not in head.lower(), head
        got = len(first)
        other = [first.replace(b"\0", b"")]
        while n := s.recv_into(buf):
            got += n
            other.append(bytes(buf[:n]).replace(b"\0", b""))
        return got, b"".join(other)


@pytest.mark.parametrize("path,pause,extra", [
    ("/bomb", 0.0, b""), ("/bomb", 1.0, b""), ("/small-buffers/bomb", 0.0, b""),
    ("/php/bomb", 0.0, b""), ("/php/bomb", 1.0, b""),
    ("/ssi/bomb", 0.0, b""), ("/ssi/bomb", 1.0, b""), ("/add/bomb", 0.0, b"slowslow")])
def test_gunzip_bomb_in_bounded_memory(ngate, path, pause, extra):
    proxy, compressed = ngate
    watch = RssWatch(worker_pid(proxy.proc.pid))
    got, other = _download(proxy.port, path, pause)
    growth = watch.stop()
    print(f"{compressed} gzip bytes -> {got} bytes through gunzip ({path}, client paused "
          f"{pause}s): worker RSS grew {growth >> 20} MiB")
    assert got == BOMB + len(extra) and other == extra
    assert growth < LIMIT, growth
