"""TLS, nginx vs ngate on the same config: which server answers for an SNI name and a Host header,
the $ssl_* and $scheme variables, plain HTTP on a TLS port (497 page and `error_page 497`), the
port-80 redirect, and what a backend sees behind HTTPS."""
from __future__ import annotations

import ssl

import pytest
import trustme

from tests.harness.client import Connection, build_request

CONF = """
http {
    ssl_protocols TLSv1.2 TLSv1.3;     # nginx 1.22's default lacks TLSv1.3; ngate's is these two
    server {
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        location / {
            return 200 "a $server_name $host $scheme $https $ssl_server_name $ssl_protocol\n";
        }
        location /app/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-SNI $ssl_server_name;
        }
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name b.test;
        ssl_certificate {pki}/b.crt;
        ssl_certificate_key {pki}/b.key;
        location / { return 200 "b $server_name $host $ssl_server_name\n"; }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        error_page 497 https://$host:$server_port$request_uri;
        location / { return 200 "x\n"; }
    }
    server {
        listen 127.0.0.1:{port3};
        server_name a.test b.test;
        return 301 https://$host$request_uri;
    }
}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    d.chmod(0o755)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    for name in ("a", "b"):
        cert = ca.issue_cert(f"{name}.test")
        cert.cert_chain_pems[0].write_to_path(str(d / f"{name}.crt"))
        cert.private_key_pem.write_to_path(str(d / f"{name}.key"))
    for p in d.iterdir():
        p.chmod(0o644)
    return d


@pytest.fixture(scope="module")
def pair(differential, pki):
    return differential(CONF, pki=pki)


def tls_exchange(port: int, server_name: str | None, raw: bytes, pki, port_key: str = "port"):
    """One request over TLS (SNI `server_name`), the response read as the harness reads any."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False
    with Connection(port) as conn:
        conn.sock = ctx.wrap_socket(conn.sock, server_hostname=server_name)
        conn.send(raw)
        return [conn.read_response()]


def over_tls(pair, pki, server_name, raw, port_key="port"):
    def script(port):
        port = pair.procs[next(k for k, p in pair.procs.items() if p.port == port)].params[port_key]
        return tls_exchange(port, server_name, raw, pki)
    return pair.check(script)


@pytest.mark.parametrize("sni, host", [
    ("a.test", b"a.test"), ("b.test", b"b.test"),
    ("a.test", b"b.test"),          # Host selects among the servers of the socket
    ("b.test", b"unknown.test"),    # an unknown Host stays with the SNI server
    ("unknown.test", b"b.test"),
    (None, b"b.test"),
])
def test_server_for_sni_and_host(pair, pki, sni, host):
    over_tls(pair, pki, sni, build_request("GET", "/", host=host))


def test_http10_without_host_goes_to_sni_server(pair, pki):
    over_tls(pair, pki, "b.test", build_request("GET", "/", host=None, version="HTTP/1.0"))


def test_proxied_request_behind_https(pair, pki):
    out = over_tls(pair, pki, "a.test", build_request("GET", "/app/x?y=1", host=b"a.test"))
    (req,) = out.requests()
    assert req.header(b"x-forwarded-proto") == b"https"
    assert req.header(b"x-sni") == b"a.test"


@pytest.mark.parametrize("raw", [
    build_request("GET", "/plain?q=1", host=b"a.test"),
    build_request("GET", "/", host=None, version="HTTP/1.0"),
    build_request("POST", "/form", host=b"b.test", body=b"x=1"),
])
def test_plain_http_on_tls_port(pair, raw):
    out = pair.check_raw(raw, method=raw.split(b" ", 1)[0].decode())
    assert out.response.status == 400


def test_error_page_497_redirect(pair):
    def script(port):
        from tests.harness.client import exchange
        proc = next(p for p in pair.procs.values() if p.port == port)
        return exchange(proc.params["port2"], build_request("GET", "/p?q=1", host=b"a.test"))
    out = pair.check(script)
    assert out.response.status == 302


def test_port_80_redirect(pair):
    def script(port):
        from tests.harness.client import exchange
        proc = next(p for p in pair.procs.values() if p.port == port)
        return exchange(proc.params["port3"], build_request("GET", "/a/b?c=d", host=b"b.test"))
    out = pair.check(script)
    assert out.response.header(b"location") == b"https://b.test/a/b?c=d"
