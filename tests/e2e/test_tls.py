"""TLS against nginx and ngate: HTTPS and wss termination, SNI, client certificates, plain HTTP on
a TLS port, the port-80 redirect, handshake failures, and TLS to upstreams (verification on and
off, keepalive). Certificates are made by trustme for each test module."""
from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import time

import pytest
import trustme
from websockets.sync.client import connect

from tests.harness.ws_echo import EchoServer
from tests.harness.backend import Backend, Reply


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, certificates for a.test (RSA and ECDSA), b.test, a backend and a client."""
    d = tmp_path_factory.mktemp("pki")
    d.chmod(0o755)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    files = {"dir": d, "ca": d / "ca.pem", "ca_obj": ca}
    for name, hosts, key_type in (("a", ["a.test"], trustme.KeyType.RSA),
                                  ("a_ec", ["a.test"], trustme.KeyType.ECDSA),
                                  ("b", ["b.test"], trustme.KeyType.ECDSA),
                                  ("backend", ["backend.test"], trustme.KeyType.ECDSA)):
        cert = ca.issue_cert(*hosts, key_type=key_type)
        cert.cert_chain_pems[0].write_to_path(str(d / f"{name}.crt"))
        cert.private_key_pem.write_to_path(str(d / f"{name}.key"))
        files[name] = cert
    client = ca.issue_cert("client@example.test", common_name="client one",
                           organization_name="Example Org")
    client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    for p in d.iterdir():
        p.chmod(0o644)
    return files


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True,
                          timeout=20)


def https(pki, port: int, name: str, path: str = "/", *extra: str) -> subprocess.CompletedProcess:
    return curl("--cacert", str(pki["ca"]), "--resolve", f"{name}:{port}:127.0.0.1", *extra,
                f"https://{name}:{port}{path}")


def peer_certificate(port: int, server_name: str | None, pki) -> dict:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            return s.getpeercert()


def san(cert: dict) -> list[str]:
    return [v for k, v in cert["subjectAltName"] if k == "DNS"]


SITES = """
http {
    log_format tls '$ssl_protocol|$ssl_server_name|$server_name|$scheme|$https';
    access_log {prefix}/logs/access.log tls;
    server {
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        ssl_certificate {pki}/a_ec.crt;
        ssl_certificate_key {pki}/a_ec.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:1m;
        ssl_session_timeout 10m;
        ssl_prefer_server_ciphers on;
        ssl_stapling on;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Https $https;
        }
        location = /vars {
            return 200 "$ssl_protocol $ssl_server_name $ssl_session_reused $ssl_client_verify\n";
        }
        location /wss {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name b.test;
        ssl_certificate {pki}/b.crt;
        ssl_certificate_key {pki}/b.key;
        location / { return 200 "b $server_name\n"; }
    }
    server {
        listen 127.0.0.1:{http_port};
        server_name a.test b.test;
        return 301 https://$host$request_uri;
    }
}
"""


@pytest.fixture
def sites(start_proxy, backend, pki):
    from tests.harness.processes import free_port
    with EchoServer() as echo:
        yield start_proxy(SITES, pki=pki["dir"], backend_port=backend.port, ws_port=echo.port,
                          http_port=free_port())


def test_https_to_plain_backend(sites, backend, pki):
    backend.route("/hello", Reply(body=b"hello over tls\n"))
    out = https(pki, sites.port, "a.test", "/hello?x=1", "-i")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/1.1 200 OK")
    assert out.stdout.endswith(b"\r\n\r\nhello over tls\n")
    req = backend.requests[0]
    assert req.target == b"/hello?x=1"
    assert req.header(b"x-forwarded-proto") == b"https"
    assert req.header(b"x-https") == b"on"


def test_tls_variables(sites, pki):
    out = https(pki, sites.port, "a.test", "/vars")
    assert out.stdout == b"TLSv1.3 a.test . NONE\n"
    out = https(pki, sites.port, "a.test", "/vars", "--tls-max", "1.2")
    assert out.stdout == b"TLSv1.2 a.test . NONE\n"
    sites.stop()
    assert "TLSv1.3|a.test|a.test|https|on" in sites.access_log()


def test_sni_picks_server_and_certificate(sites, pki):
    assert san(peer_certificate(sites.port, "a.test", pki)) == ["a.test"]
    assert san(peer_certificate(sites.port, "b.test", pki)) == ["b.test"]
    out = https(pki, sites.port, "b.test")
    assert out.stdout == b"b b.test\n", out.stderr


def test_unknown_or_missing_sni_gets_default_server(sites, pki):
    assert san(peer_certificate(sites.port, "other.test", pki)) == ["a.test"]
    assert san(peer_certificate(sites.port, None, pki)) == ["a.test"]


def test_rsa_and_ecdsa_certificates(sites, pki):
    for ciphers, key_name in (("ECDHE-RSA-AES128-GCM-SHA256", "rsa"),
                              ("ECDHE-ECDSA-AES128-GCM-SHA256", "ec")):
        out = https(pki, sites.port, "a.test", "/vars", "--tls-max", "1.2",
                    "--ciphers", ciphers)
        assert out.returncode == 0, (key_name, out.stderr)
        assert out.stdout.startswith(b"TLSv1.2 a.test")


def test_plain_http_on_tls_port(sites):
    out = curl("-i", f"http://127.0.0.1:{sites.port}/x")
    assert out.stdout.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"<title>400 The plain HTTP request was sent to HTTPS port</title>" in out.stdout
    sites.stop()
    assert "client sent plain HTTP request to HTTPS port" in sites.error_log()


def test_port_80_redirect(sites):
    port = sites.params["http_port"]
    out = curl("-i", "-H", "Host: b.test", f"http://127.0.0.1:{port}/p/a?q=1")
    assert out.stdout.startswith(b"HTTP/1.1 301 Moved Permanently")
    assert b"\r\nLocation: https://b.test/p/a?q=1\r\n" in out.stdout


def test_redirect_followed_to_https(sites, pki):
    port = sites.params["http_port"]
    out = curl("-L", "--cacert", str(pki["ca"]), "--resolve", f"b.test:{port}:127.0.0.1",
               "--resolve", f"b.test:443:127.0.0.1", "--connect-to",
               f"b.test:443:127.0.0.1:{sites.port}", f"http://b.test:{port}/")
    assert out.stdout == b"b b.test\n", out.stderr


def test_wss_to_plain_websocket_backend(sites, pki):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    sock = socket.create_connection(("127.0.0.1", sites.port), timeout=5)
    with connect("wss://a.test/wss", sock=sock, ssl=ctx, server_hostname="a.test",
                 open_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00" * 70000)
        assert ws.recv(timeout=5) == b"\x00" * 70000
        ws.send("headers")
        seen = json.loads(ws.recv(timeout=5))
    assert {k.lower(): v for k, v in seen.items()}["upgrade"].lower() == "websocket"


def test_failed_and_stalled_handshakes_are_logged(sites, pki):
    with socket.create_connection(("127.0.0.1", sites.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")          # a broken ClientHello
        assert s.recv(100) is not None
    ctx = ssl.create_default_context()                  # does not trust our CA
    with socket.create_connection(("127.0.0.1", sites.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="a.test")
    out = https(pki, sites.port, "a.test", "/vars")     # still serving
    assert out.stdout.startswith(b"TLSv1.3")
    sites.stop()
    assert "while SSL handshaking" in sites.error_log()


CLIENT_VERIFY = """
http {
    server {
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        ssl_client_certificate {pki}/ca.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / { return 200 "$ssl_client_verify $ssl_client_s_dn\n"; }
    }
}
"""


def test_client_certificate_required(start_proxy, pki):
    proxy = start_proxy(CLIENT_VERIFY, pki=pki["dir"])
    out = https(pki, proxy.port, "a.test", "/", "--cert", str(pki["dir"] / "client.pem"))
    assert re.fullmatch(rb"SUCCESS CN=client one,OU=Testing cert #[\w-]+,O=Example Org\n",
                        out.stdout), out.stderr
    out = https(pki, proxy.port, "a.test", "/", "-i")
    assert out.stdout.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"<title>400 No required SSL certificate was sent</title>" in out.stdout


def test_client_certificate_from_other_ca_refused(start_proxy, pki, tmp_path):
    other = trustme.CA().issue_cert("intruder@example.test")
    other.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "intruder.pem"))
    proxy = start_proxy(CLIENT_VERIFY, pki=pki["dir"])
    out = https(pki, proxy.port, "a.test", "/", "-i", "--cert", str(tmp_path / "intruder.pem"))
    # the handshake completes; the request gets nginx's 400 "The SSL certificate error" (495)
    assert out.stdout.startswith(b"HTTP/1.1 400 Bad Request"), out.stdout[:200]
    assert b"The SSL certificate error" in out.stdout


UPSTREAM_TLS = """
http {
    upstream secure {
        server 127.0.0.1:{tls_port};
        keepalive 4;
    }
    server {
        listen 127.0.0.1:{port};
        location /noverify/ {
            proxy_pass https://127.0.0.1:{tls_port}/;
        }
        location /verify/ {
            proxy_pass https://127.0.0.1:{tls_port}/;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {pki}/ca.pem;
            proxy_ssl_verify_depth 2;
            proxy_ssl_name backend.test;
            proxy_ssl_server_name on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;
        }
        location /wrongname/ {
            proxy_pass https://127.0.0.1:{tls_port}/;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {pki}/ca.pem;
            proxy_ssl_name other.test;
        }
        location /keepalive/ {
            proxy_pass https://secure/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""


@pytest.fixture
def tls_backend(pki):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki["backend"].configure_cert(ctx)
    with Backend("tls-backend", ssl=ctx) as b:
        yield b


def test_upstream_tls_without_verification(start_proxy, tls_backend, pki):
    proxy = start_proxy(UPSTREAM_TLS, pki=pki["dir"], tls_port=tls_backend.port)
    out = curl(f"http://127.0.0.1:{proxy.port}/noverify/x")
    assert out.stdout == b"ok tls-backend\n", out.stderr
    assert tls_backend.requests[0].target == b"/x"


def test_upstream_tls_verified(start_proxy, tls_backend, pki):
    proxy = start_proxy(UPSTREAM_TLS, pki=pki["dir"], tls_port=tls_backend.port)
    out = curl(f"http://127.0.0.1:{proxy.port}/verify/y")
    assert out.stdout == b"ok tls-backend\n", out.stderr
    out = curl("-i", f"http://127.0.0.1:{proxy.port}/wrongname/z")
    assert out.stdout.startswith(b"HTTP/1.1 502 Bad Gateway")
    proxy.stop()
    assert 'upstream SSL certificate does not match "other.test"' in proxy.error_log()
    assert [r.target for r in tls_backend.requests] == [b"/y"]


def test_upstream_tls_keepalive(start_proxy, tls_backend, pki):
    proxy = start_proxy(UPSTREAM_TLS, pki=pki["dir"], tls_port=tls_backend.port)
    for i in range(3):
        out = curl(f"http://127.0.0.1:{proxy.port}/keepalive/{i}")
        assert out.stdout == b"ok tls-backend\n", out.stderr
    assert [r.target for r in tls_backend.requests] == [b"/0", b"/1", b"/2"]
    assert tls_backend.connections == 1


def test_stalled_handshake_times_out(start_proxy, pki):
    conf = SITES.replace("server_name a.test;", "server_name a.test;\n client_header_timeout 1s;", 1)
    from tests.harness.processes import free_port
    proxy = start_proxy(conf, pki=pki["dir"], backend_port=free_port(), ws_port=free_port(),
                        http_port=free_port())
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01")                      # the start of a record, then nothing
        s.settimeout(5)
        started = time.monotonic()
        assert s.recv(100) == b""                       # closed by the proxy
        assert time.monotonic() - started < 4.5
    proxy.stop()
    assert "client timed out" in proxy.error_log()


GRACEFUL = """
http {
    access_log off;
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/a_ec.crt;
        ssl_certificate_key {pki}/a_ec.key;
        location / { return 200 "one"; }
    }
}
"""


def test_graceful_stop_refuses_new_tls_connections(start_proxy, pki):
    """On QUIT the worker closes its listening sockets (ngx_close_listening_sockets), as the
    master does: a new connection to a TLS port is refused, not queued for a worker that will
    never accept it, while a request in flight is finished."""
    import os
    import signal
    from tests.harness.processes import accepts, wait_for
    proxy = start_proxy(GRACEFUL, pki=pki["dir"])
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="a.test") as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        os.kill(proxy.proc.pid, signal.SIGQUIT)
        wait_for(lambda: "gracefully shutting down" in proxy.error_log(), "the worker's notice")
        wait_for(lambda: not accepts(proxy.port), "new connections refused", timeout=5)
        client.sendall(b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"one")
