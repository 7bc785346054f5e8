"""fastcgi_pass end to end, on nginx and on ngate: a scripted FastCGI server that records what it
receives (connections, BEGIN_REQUEST flags, params, stdin) and answers as told, plus a real
php-fpm for a flush()ed response.
"""
import hashlib
import os
import time

import pytest

from ngate.fastcgi import records as fcgi
from tests.harness.client import Connection, build_request, request
from tests.harness.fastcgi_server import FakeFastCGI
from tests.harness.phpfpm import PhpFpm
from tests.harness.processes import ProxyProcess, fresh_prefix


@pytest.fixture
def fake():
    f = FakeFastCGI()
    yield f
    f.close()


CONF = """
http {
    upstream fcgi_keep { server 127.0.0.1:{fcgi_port}; keepalive 2; }
    server {
        listen 127.0.0.1:{port};
        fastcgi_param HTTP_HOST forced.test;
        fastcgi_param REQUEST_METHOD $request_method;
        location /plain/ { fastcgi_pass 127.0.0.1:{fcgi_port}; }
        location /keep/ { fastcgi_pass fcgi_keep; fastcgi_keep_conn on; }
        location /stream/ { fastcgi_pass 127.0.0.1:{fcgi_port}; fastcgi_buffering off; }
    }
}
"""


def test_keep_conn_reuses_one_connection(start_proxy, fake):
    proxy = start_proxy(CONF, fcgi_port=fake.port)
    with Connection(proxy.port) as c:
        for _ in range(3):
            c.send(build_request("GET", "/keep/x"))
            assert c.read_response().body == b"ok\n"
    assert fake.connections == 1
    assert [r["flags"] for r in fake.requests] == [fcgi.KEEP_CONN] * 3


def test_without_keep_conn_a_connection_per_request(start_proxy, fake):
    proxy = start_proxy(CONF, fcgi_port=fake.port)
    for _ in range(2):
        assert request(proxy.port, "GET", "/plain/x").status == 200
    assert fake.connections == 2 and [r["flags"] for r in fake.requests] == [0, 0]


def test_client_headers_as_http_params(start_proxy, fake):
    proxy = start_proxy(CONF, fcgi_port=fake.port)
    request(proxy.port, "POST", "/plain/x", body=b"abc",
            headers=[(b"X-Foo-Bar", b"1"), (b"Accept", b"*/*")])
    params = fake.requests[0]["params"]
    assert params[:2] == [(b"HTTP_HOST", b"forced.test"), (b"REQUEST_METHOD", b"POST")]
    names = [n for n, _ in params]
    assert names.count(b"HTTP_HOST") == 1           # the client's Host clashes: not sent
    assert (b"HTTP_X_FOO_BAR", b"1") in params and (b"HTTP_ACCEPT", b"*/*") in params
    assert (b"HTTP_CONTENT_LENGTH", b"3") in params and fake.requests[0]["stdin"] == b"abc"


def test_stderr_only_then_end_is_502(start_proxy, fake):
    def answer(conn, req):
        conn.sendall(fcgi.record(fcgi.STDERR, b"boom\n"))
        fake.end(conn)
    fake.answer = answer
    proxy = start_proxy(CONF, fcgi_port=fake.port)
    assert request(proxy.port, "GET", "/plain/x").status == 502
    log = proxy.error_log()
    assert 'FastCGI sent in stderr: "boom" while reading response header from upstream' in log
    assert "upstream sent unexpected FastCGI record: 3 while reading response header" in log


def test_streamed_response_is_bounded_by_the_client(start_proxy, fake):
    """A FastCGI server writing 256 MiB to a client that reads 1 MiB: the server is held back
    (the proxy does not buffer the response) and the client gets exactly what was sent."""
    total = 256 * 1024 * 1024
    chunk = b"x" * 65535

    def answer(conn, req):
        conn.sendall(fcgi.record(fcgi.STDOUT, b"Content-Type: text/plain\r\n\r\n"))
        try:
            while fake.sent < total:
                conn.sendall(fcgi.record(fcgi.STDOUT, chunk))
                fake.sent += len(chunk)
        except OSError:
            return
        fake.end(conn)
    fake.answer = answer
    proxy = start_proxy(CONF, fcgi_port=fake.port)
    with Connection(proxy.port, timeout=10) as c:
        c.send(build_request("GET", "/stream/x"))
        got = c.read_exactly(1024 * 1024)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:      # let the server run as far as it can
            time.sleep(0.1)
        assert fake.sent < 64 * 1024 * 1024


def test_php_flush_reaches_the_client_before_the_script_ends(start_proxy, tmp_path):
    """flush() output arrives while the script still runs: the script waits for a file the
    test creates only after reading the first part."""
    with PhpFpm(tmp_path) as fpm:
        flag = fpm.dir / "tmp" / "go"
        fpm.script("flush.php", f"""<?php
echo "first\\n"; flush();
for ($i = 0; $i < 500 && !file_exists("{flag}"); $i++) usleep(10000);
echo file_exists("{flag}") ? "second\\n" : "timeout\\n";
""")
        proxy = start_proxy("""
http { server { listen 127.0.0.1:{port};
    location ~ \\.php$ { root {docroot}; fastcgi_pass 127.0.0.1:{fpm_port};
        fastcgi_buffering off; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param REQUEST_METHOD $request_method; } } }
""", docroot=fpm.docroot, fpm_port=fpm.port)
        with Connection(proxy.port, timeout=10) as c:
            c.send(build_request("GET", "/flush.php"))
            head = b""
            while b"first\n" not in head:
                part = c.sock.recv(65536)
                assert part, head
                head += part
            flag.write_text("go")
            c.buf = head[head.index(b"\r\n\r\n") + 4:]
            rest = b""
            while not rest.endswith(b"0\r\n\r\n"):
                part = c.sock.recv(65536)
                assert part, rest
                rest += part
        assert b"second\n" in rest and b"timeout" not in rest


def test_body_keeps_flowing_after_an_early_response_head(tmp_path):
    """ngate only: nginx stops sending the request body once the response head arrives, so a
    script that flush()es before reading a large input never gets it (nginx times out). ngate
    keeps feeding STDIN (a streamed body: fastcgi_request_buffering off)."""
    with PhpFpm(tmp_path) as fpm:
        fpm.script("early.php", """<?php
echo "head sent\\n"; flush();
$in = fopen("php://input", "r"); $n = 0; $h = hash_init("md5");
while (!feof($in)) { $b = fread($in, 65536); $n += strlen($b); hash_update($h, $b); }
echo $n, " ", hash_final($h), "\\n";
""")
        conf = """
http { server { listen 127.0.0.1:{port}; client_max_body_size 64m;
    location ~ \\.php$ { root {docroot}; fastcgi_pass 127.0.0.1:{fpm_port};
        include fastcgi_params; fastcgi_request_buffering off;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; } } }
"""
        data = os.urandom(24 * 1024 * 1024)
        with ProxyProcess("ngate", conf, fresh_prefix(tmp_path, "ngate"),
                          docroot=fpm.docroot, fpm_port=fpm.port) as proxy:
            with Connection(proxy.port, timeout=30) as c:
                c.send(build_request("PUT", "/early.php", body=data))
                r = c.read_response()
    assert r.body == b"head sent\n%d %s\n" % (len(data), hashlib.md5(data).hexdigest().encode())


def test_next_upstream_on_a_500_tries_the_other_server(start_proxy, fake):
    """fastcgi_next_upstream error http_500: the failing server's answer is dropped, the other
    server answers (nginx and ngate)."""
    failing = FakeFastCGI()

    def status_500(conn, req):
        conn.sendall(fcgi.record(fcgi.STDOUT, b"Status: 500\r\nContent-Type: text/plain\r\n\r\nbad\n")
                     + fcgi.record(fcgi.STDOUT))
        failing.end(conn)
    failing.answer = status_500
    conf = """
    http {
        upstream pair { server 127.0.0.1:{bad_port}; server 127.0.0.1:{good_port}; }
        upstream pair2 { server 127.0.0.1:{bad_port}; server 127.0.0.1:{good_port}; }
        server {
            listen 127.0.0.1:{port};
            location / { fastcgi_pass pair; fastcgi_next_upstream error timeout http_500; }
            # its own group: the retried 500s above marked the failing server down in `pair`
            location /no-retry/ { fastcgi_pass pair2; }
        }
    }
    """
    try:
        proxy = start_proxy(conf, bad_port=failing.port, good_port=fake.port)
        for _ in range(2):      # whichever server round robin picks first, the client gets ok
            resp = request(proxy.port, "GET", "/x")
            assert (resp.status, resp.body) == (200, b"ok\n")
        bodies = {request(proxy.port, "GET", "/no-retry/x").body for _ in range(4)}
        assert bodies == {b"ok\n", b"bad\n"}    # without http_500 the 500 reaches the client
    finally:
        failing.close()


def test_catch_stderr_makes_the_response_invalid(start_proxy, fake):
    """fastcgi_catch_stderr: a match in stderr before the head is an invalid response (502, or
    the next server with `invalid_header`); without a match, stderr is only logged."""
    def answer(conn, req):
        conn.sendall(fcgi.record(fcgi.STDERR, b"PHP Fatal error: x\n")
                     + fcgi.record(fcgi.STDOUT, b"Content-Type: text/plain\r\n\r\nbody\n")
                     + fcgi.record(fcgi.STDOUT))
        fake.end(conn)
    fake.answer = answer
    conf = """
    http {
        server {
            listen 127.0.0.1:{port};
            location / { fastcgi_pass 127.0.0.1:{fcgi_port}; fastcgi_catch_stderr "Fatal"; }
            location /other/ { fastcgi_pass 127.0.0.1:{fcgi_port}; fastcgi_catch_stderr nomatch; }
        }
    }
    """
    proxy = start_proxy(conf, fcgi_port=fake.port)
    assert request(proxy.port, "GET", "/x").status == 502
    resp = request(proxy.port, "GET", "/other/x")
    assert (resp.status, resp.body) == (200, b"body\n")
    log = proxy.error_log()
    assert log.count('FastCGI sent in stderr: "PHP Fatal error: x"') == 2
    assert "upstream sent" not in log
