"""nginx 1.25's `http2 on|off` per server (ngx_http_ssl_alpn_select, ngx_http_v2_run_request):
on a TLS socket ALPN offers h2 only when the server SNI chose has `http2 on` (or the socket has
`listen ... http2`), and a client offering h2 alone is refused with a no_application_protocol
alert; an HTTP/2 request whose Host selects a server with `http2 off` gets 421 Misdirected
Request; a clear-text socket takes the HTTP/2 preface when its default server has `http2 on`.
Real clients: curl --http2 with SNI names, curl --http2-prior-knowledge, an h2 client.
(Debian's nginx 1.22 has no `http2` directive: no differential here; nginx's own h2_http2.t
runs in the conformance suite.)"""
from __future__ import annotations

import socket
import ssl
import subprocess

import pytest
import trustme

from tests.harness.h2client import H2Client
from tests.harness.processes import ProxyProcess, free_port, wait_log

NAMES = ("on.test", "off.test", "other.test")

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    ssl_certificate {pki}/names.crt;
    ssl_certificate_key {pki}/names.key;
    # TLS, default server with http2 on, one with it off
    server {
        listen 127.0.0.1:{port} ssl;
        server_name on.test;
        http2 on;
        location / { return 200 "on $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{port};
        server_name off.test;
        http2 off;
        error_page 421 /misdirected;
        location / { return 200 "off $http2\\n"; }
        location = /misdirected { return 421 "off says misdirected\\n"; }
    }
    # TLS, default server with http2 off (the default), a named one with it on
    server {
        listen 127.0.0.1:{tls_off} ssl;
        server_name off.test;
        location / { return 200 "default off $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{tls_off};
        server_name on.test;
        http2 on;
        location / { return 200 "named on $http2\\n"; }
    }
    # `listen ... http2` (nginx 1.22's form): HTTP/2 for every server of the socket
    server {
        listen 127.0.0.1:{tls_listen} ssl http2;
        server_name on.test;
        http2 off;
        location / { return 200 "listen $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{tls_listen};
        server_name off.test;
        http2 off;
        location / { return 200 "listen off $http2\\n"; }
    }
    # clear text: the default server decides whether the preface is HTTP/2
    server {
        listen 127.0.0.1:{plain_on};
        server_name on.test;
        http2 on;
        location / { return 200 "plain on $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{plain_on};
        server_name off.test;
        location / { return 200 "plain off $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{plain_off};
        server_name off.test;
        location / { return 200 "plain default off $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{plain_off};
        server_name on.test;
        http2 on;
        location / { return 200 "plain named on $http2\\n"; }
    }
}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    d.chmod(0o755)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    cert = ca.issue_cert(*NAMES)
    cert.cert_chain_pems[0].write_to_path(str(d / "names.crt"))
    cert.private_key_pem.write_to_path(str(d / "names.key"))
    return d


@pytest.fixture(scope="module")
def ngate(tmp_path_factory, pki):
    prefix = tmp_path_factory.mktemp("ngate-h2sni")
    with ProxyProcess("ngate", CONF, prefix, pki=str(pki), tls_off=free_port(),
                      tls_listen=free_port(), plain_on=free_port(), plain_off=free_port()) as p:
        yield p


def curl(pki, port: int, name: str, *args: str) -> bytes:
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--cacert", str(pki / "ca.pem"),
                        "--resolve", f"{name}:{port}:127.0.0.1", *args,
                        f"https://{name}:{port}/"], capture_output=True, timeout=30)
    return r.stdout


def tls_context(pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False
    return ctx


def h2_get(pki, port: int, sni: str, authority: str, path: str = "/") -> tuple:
    with H2Client(port, tls=tls_context(pki), server_name=sni) as c:
        sid = c.request(path, authority=authority)
        return c.response(sid)


@pytest.mark.parametrize("name, head, body", [
    ("on.test", b"HTTP/2 200", b"on h2\n"),
    ("off.test", b"HTTP/1.1 200", b"off \n"),       # ALPN chose http/1.1 for SNI off.test
])
def test_alpn_follows_the_sni_server(ngate, pki, name, head, body):
    out = curl(pki, ngate.port, name, "--http2")
    assert out.startswith(head) and out.endswith(body), out


def test_sni_to_a_server_with_http2_off_refuses_h2_alone(ngate, pki):
    """ALPN offering h2 alone: nginx's SSL_select_next_proto finds no overlap -> fatal alert."""
    with pytest.raises(ssl.SSLError, match="alert no application protocol"):
        H2Client(ngate.port, tls=tls_context(pki), server_name="off.test")
    wait_log(ngate, r"no application protocol")


def test_default_server_with_http2_off_and_a_named_one_on(ngate, pki):
    port = ngate.params["tls_off"]
    out = curl(pki, port, "off.test", "--http2")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"default off \n"), out
    out = curl(pki, port, "on.test", "--http2")
    assert out.startswith(b"HTTP/2 200") and out.endswith(b"named on h2\n"), out
    with pytest.raises(ssl.SSLError, match="alert no application protocol"):
        H2Client(port, tls=tls_context(pki), server_name=None)      # no SNI: the default's
    assert h2_get(pki, port, "on.test", "on.test")[::2] == (200, b"named on h2\n")


def test_host_selecting_a_server_with_http2_off_is_misdirected(ngate, pki):
    """SNI on.test negotiated h2; :authority off.test selects `http2 off`: 421, with that
    server's error_page; the same connection's other names are served."""
    assert h2_get(pki, ngate.port, "on.test", "on.test")[::2] == (200, b"on h2\n")
    status, _, body = h2_get(pki, ngate.port, "on.test", "off.test")
    assert (status, body) == (421, b"off says misdirected\n")
    wait_log(ngate, r"\[info\].*client attempted to request the server name for which the "
             r"negotiated protocol is disabled while reading client request headers")
    with H2Client(ngate.port, tls=tls_context(pki), server_name="on.test") as c:
        first = c.request("/", authority="off.test")
        second = c.request("/", authority="on.test")
        assert c.response(first)[0] == 421
        assert c.response(second)[::2] == (200, b"on h2\n")


def test_listen_http2_keeps_h2_for_servers_with_http2_off(ngate, pki):
    port = ngate.params["tls_listen"]
    out = curl(pki, port, "off.test", "--http2")
    assert out.startswith(b"HTTP/2 200") and out.endswith(b"listen off h2\n"), out
    assert h2_get(pki, port, "on.test", "off.test")[::2] == (200, b"listen off h2\n")


def test_cleartext_preface_by_the_default_server(ngate):
    def prior_knowledge(port: int, host: str) -> bytes:
        return subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--http2-prior-knowledge",
                               "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
                              capture_output=True, timeout=30).stdout
    port = ngate.params["plain_on"]
    out = prior_knowledge(port, "on.test")
    assert out.startswith(b"HTTP/2 200") and out.endswith(b"plain on h2c\n"), out
    assert prior_knowledge(port, "off.test").startswith(b"HTTP/2 421"), out
    # a default server with http2 off: the preface is an HTTP/1.x request line, not HTTP/2
    port = ngate.params["plain_off"]
    out = prior_knowledge(port, "on.test")
    assert not out.startswith(b"HTTP/2"), out
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 Bad Request\r\n")     # as nginx 1.22's
