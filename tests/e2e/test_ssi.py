"""SSI and addition with real clients: curl --compressed on a page whose includes come from a
proxied backend, the static module and `return` (gzip after the postponed output); a page that
streams its text before an included upstream has answered; includes answered out of order that
still arrive in order; a client leaving while an include runs; config errors as nginx."""
from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from tests.harness.paths import readable_tmpdir
from tests.harness.processes import ProxyProcess, config_test, fresh_prefix

CONF = """
http {
    include mime.types;
    gzip on;
    server {
        listen 127.0.0.1:{port};
        root {docroot};
        ssi on;
        location /gated/ { proxy_pass http://127.0.0.1:{gated_port}/; }
        location /ret/ { return 200 "ret:$uri"; }
        location /add/ {
            ssi off;
            alias {docroot}/;
            add_before_body /ret/b;
            add_after_body /gated/after;
        }
    }
}
"""

BIG = b"<p>" + b"x" * 5000 + b"</p>"
FILES = {
    "page.html": b'A<!--#include virtual="/part.html" -->B<!--#include virtual="/ret/r" -->C'
                 b'<!--#echo var="arg_v" default="-" -->' + BIG,
    "part.html": b"[part]",
    "stream.html": b'before <!--#include virtual="/gated/one" --> after',
    "order.html": b'<!--#include virtual="/gated/first" -->|'
                  b'<!--#include virtual="/gated/second" -->|end',
    "plain.html": b"PLAIN",
    "gone.html": b'x<!--#include virtual="/gated/gone" -->y',
}


class GatedBackend:
    """Answers GET /<name> with "<name>!" once gate(name) is opened; one connection each."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.gates: dict[str, threading.Event] = {}
        self.arrived: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def _event(self, table: dict, name: str) -> threading.Event:
        with self.lock:
            return table.setdefault(name, threading.Event())

    def gate(self, name: str) -> threading.Event:
        return self._event(self.gates, name)

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            name = data.split(b" ", 2)[1].decode().strip("/")
            self._event(self.arrived, name).set()
            self.gate(name).wait(20)
            body = name.encode() + b"!"
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d"
                             b"\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass

    def close(self) -> None:
        for g in list(self.gates.values()):
            g.set()
        self.sock.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("ssi-e2e")
    with readable_tmpdir("ngate-ssi-e2e-") as docroot:     # workers run as nobody
        for name, data in FILES.items():
            (docroot / name).write_bytes(data)
        gated = GatedBackend()
        proc = ProxyProcess("ngate", CONF, fresh_prefix(base, "ngate"), docroot=docroot,
                            gated_port=gated.port).start()
        yield proc, gated
        proc.stop()
        gated.close()


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30)


def test_curl_compressed_page_with_includes(site):
    proc, _ = site
    r = _curl("--compressed", "-D", "-", f"http://127.0.0.1:{proc.port}/page.html?v=V")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert body == b"A[part]Bret:/ret/rCV" + BIG
    assert b"Content-Encoding: gzip" in head and b"Content-Length" not in head


def _read_until(s, data: bytes, marker: bytes) -> bytes:
    while marker not in data:
        more = s.recv(65536)
        assert more, f"connection closed before {marker!r}: {data!r}"
        data += more
    return data


def test_text_before_an_include_streams_while_it_runs(site):
    """The client gets "before " while the included upstream has not answered (it answers only
    once the test has seen it)."""
    proc, gated = site
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        s.sendall(b"GET /stream.html HTTP/1.1\r\nHost: x\r\n\r\n")
        data = _read_until(s, b"", b"before ")
        assert b"one!" not in data
        gated.gate("one").set()
        data = _read_until(s, data, b"0\r\n\r\n")
    assert b"one!" in data and data.index(b"one!") < data.index(b" after")


def test_includes_answered_out_of_order_arrive_in_order(site):
    proc, gated = site
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        s.sendall(b"GET /order.html HTTP/1.0\r\n\r\n")
        assert gated._event(gated.arrived, "second").wait(10)     # both run at once
        gated.gate("second").set()
        gated.gate("first").set()
        data = b""
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
    assert data.endswith(b"\r\n\r\nfirst!|second!|end")


def test_addition_before_and_after(site):
    proc, gated = site
    gated.gate("after").set()
    r = _curl(f"http://127.0.0.1:{proc.port}/add/plain.html")
    assert r.stdout == b"ret:/ret/bPLAINafter!"


def test_client_leaving_while_an_include_runs(site):
    """The client closes while its include waits on the upstream; the include is then answered:
    nothing is written for the gone client, the worker serves on, no [alert]."""
    proc, gated = site
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        s.sendall(b"GET /gone.html HTTP/1.1\r\nHost: x\r\n\r\n")
        _read_until(s, b"", b"\r\n\r\n")
        assert gated._event(gated.arrived, "gone").wait(10)
    gated.gate("gone").set()
    r = _curl(f"http://127.0.0.1:{proc.port}/page.html")
    assert r.stdout.startswith(b"A[part]B")
    assert "[alert]" not in proc.error_log()


@pytest.mark.parametrize("directive,message", [
    ("ssi maybe;", 'invalid value "maybe" in "ssi" directive, it must be "on" or "off"'),
    ("ssi_types;", 'invalid number of arguments in "ssi_types" directive'),
    ("ssi_value_length x;", '"ssi_value_length" directive invalid value'),
    ("add_after_body;", 'invalid number of arguments in "add_after_body" directive'),
])
def test_config_errors_as_nginx(tmp_path, directive, message):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n" + directive + "\n}\n")
    r = config_test(conf)
    assert r.returncode == 1
    assert f"[emerg] {message} in {conf}:3" in r.stderr
