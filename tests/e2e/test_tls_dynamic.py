"""Certificates chosen per handshake and handshakes refused, on nginx and ngate alike: variables
in ssl_certificate / ssl_certificate_key ($ssl_server_name, geo), "data:" values, a replaced file
read at the next handshake, nginx's error line and internal_error alert for a certificate that
cannot be loaded; the alerts of ssl_reject_handshake and of an ALPN list with nothing nginx
speaks, byte for byte; a plain "PRI * HTTP/2.0" on a TLS socket."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import ssl

import pytest
import trustme

from tests.harness.processes import ProxyProcess, free_port, fresh_prefix, searchable

CONF = """
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    geo $site { default a.test; }
    server {
        listen 127.0.0.1:{port} ssl http2;
        server_name sni.test;
        ssl_certificate $ssl_server_name.crt;
        ssl_certificate_key $ssl_server_name.key;
        location / { return 200 "sni $ssl_server_name\\n"; }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        server_name default.test;
        ssl_certificate $site.crt;
        ssl_certificate_key keys/$site.key;
        location / { return 200 "default $server_name\\n"; }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        server_name no-certificate.test;
        location / { return 200 "no-certificate $server_name\\n"; }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        server_name b.test;
        ssl_certificate b.test.crt;
        ssl_certificate_key keys/b.test.key;
        location / { return 200 "b $server_name\\n"; }
    }
    server {
        listen 127.0.0.1:{port3} ssl http2;
        server_name c.test;
        ssl_certificate "data:{c_crt}";
        ssl_certificate_key "data:{c_key}";
        location / { return 200 "data $server_name\\n"; }
    }
    server {
        listen 127.0.0.1:{port4} ssl default_server;
        ssl_reject_handshake on;
    }
    server {
        listen 127.0.0.1:{port4} ssl;
        server_name b.test;
        ssl_certificate b.test.crt;
        ssl_certificate_key keys/b.test.key;
        location / { return 200 "accepted $server_name\\n"; }
    }
}
"""


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def write_pair(ca, prefix, name: str) -> None:
    cert = ca.issue_cert(name)
    cert.cert_chain_pems[0].write_to_path(str(prefix / f"{name}.crt"))
    (prefix / "keys").mkdir(exist_ok=True)
    cert.private_key_pem.write_to_path(str(prefix / f"{name}.key"))
    shutil.copy(prefix / f"{name}.key", prefix / "keys" / f"{name}.key")


@pytest.fixture
def server(proxy_kind, ca, tmp_path):
    """The program under test with certificates for a.test, b.test and sni.test in its prefix
    (the config's directory, where relative values resolve), c.test given as data: values."""
    prefix = fresh_prefix(tmp_path, proxy_kind)
    prefix.mkdir(parents=True, exist_ok=True)
    searchable(prefix)          # nginx's workers (nobody) read the files at each handshake
    for name in ("a.test", "b.test", "sni.test"):
        write_pair(ca, prefix, name)
    for path in [prefix / "keys", *prefix.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    c = ca.issue_cert("c.test")
    pem = {"c_crt": c.cert_chain_pems[0].bytes().decode().strip(),
           "c_key": c.private_key_pem.bytes().decode().strip()}
    ports = {key: free_port() for key in ("port2", "port3", "port4")}
    with ProxyProcess(proxy_kind, CONF, prefix, **ports, **pem) as proc:
        yield proc


def client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.check_hostname = False
    return ctx


def verified(ca, port: int, name: str | None, alpn=None) -> dict:
    ctx = client_context(ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            cert = s.getpeercert()
            s.sendall(f"GET / HTTP/1.0\r\nHost: {name or 'x'}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    names = [v for k, v in cert["subjectAltName"] if k == "DNS"]
    return {"names": names, "body": data.split(b"\r\n\r\n", 1)[1].decode()}


def refused_with(port: int, name: str | None, alpn=None) -> bytes:
    """The bytes a server answers a ClientHello with, when it refuses the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(outgoing.read())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def test_certificate_named_by_sni(server, ca):
    for name in ("a.test", "b.test", "sni.test"):
        got = verified(ca, server.port, name)
        assert got == {"names": [name], "body": f"sni {name}\n"}


def test_certificate_by_variables_with_alpn_h2(server, ca):
    ctx = client_context(ca)
    ctx.set_alpn_protocols(["http/1.1", "h2"])      # the server's order decides: h2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="b.test") as s:
            assert s.selected_alpn_protocol() == "h2"
            assert [v for k, v in s.getpeercert()["subjectAltName"]] == ["b.test"]


def test_certificate_that_cannot_be_loaded_fails_the_handshake(server, ca):
    assert refused_with(server.port, "nx.test") == bytes.fromhex("15030300020250")
    log = server.error_log()
    path = server.prefix / "nx.test.crt"
    assert re.search(
        rf'\[error\] \d+#\d+: \*(\d+) cannot load certificate "{re.escape(str(path))}": '
        rf"BIO_new_file\(\) failed \(SSL: error:80000002:system library::No such file or "
        rf"directory:calling fopen\({re.escape(str(path))}, r\) error:10000080:BIO routines::no "
        rf"such file\) while SSL handshaking, client: 127.0.0.1, server: 127.0.0.1:{server.port}",
        log), log
    assert "SSL_do_handshake() failed (SSL: error:0A000179:SSL routines::cert cb error) while " \
           "SSL handshaking" in log, log


def test_default_server_values_for_a_server_without_certificates(server, ca):
    port = server.params["port2"]
    assert verified(ca, port, "default.test") == {"names": ["a.test"],
                                                   "body": "default default.test\n"}
    assert verified(ca, port, "no-certificate.test") == {
        "names": ["a.test"], "body": "no-certificate no-certificate.test\n"}
    assert verified(ca, port, "b.test") == {"names": ["b.test"], "body": "b b.test\n"}
    assert verified(ca, port, None)["names"] == ["a.test"]


def test_replaced_certificate_is_read_at_the_next_handshake(server, ca):
    assert verified(ca, server.port, "a.test")["names"] == ["a.test"]
    other = ca.issue_cert("a.test", "renewed.test")
    other.cert_chain_pems[0].write_to_path(str(server.prefix / "a.test.crt"))
    other.private_key_pem.write_to_path(str(server.prefix / "a.test.key"))
    assert verified(ca, server.port, "a.test")["names"] == ["a.test", "renewed.test"]


def test_data_values_and_alpn(server, ca):
    port = server.params["port3"]
    assert verified(ca, port, "c.test") == {"names": ["c.test"], "body": "data c.test\n"}
    # a client offering nothing nginx speaks: no_application_protocol, then the log line
    assert refused_with(port, "c.test", ["unknown"]) == bytes.fromhex("15030300020278")
    assert "SSL_do_handshake() failed (SSL: error:0A0000EB:SSL routines::no application " \
           "protocol) while SSL handshaking" in server.error_log()


def test_reject_handshake_sends_unrecognized_name(server, ca):
    port = server.params["port4"]
    for name in ("unknown.test", None):
        assert refused_with(port, name) == bytes.fromhex("15030300020270")
    assert server.error_log().count("handshake rejected while SSL handshaking, client: "
                                    f"127.0.0.1, server: 127.0.0.1:{port}") == 2
    assert verified(ca, port, "b.test")["body"] == "accepted b.test\n"


def test_h2c_preface_on_tls_socket_is_a_bad_request(server):
    with socket.create_connection(("127.0.0.1", server.params["port3"]), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_with_curl_and_openssl_clients(server, ca, tmp_path):
    """What users check with: curl verifying the certificate for the name it resolved, and
    openssl s_client naming the alert of a refused handshake."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    for name in ("a.test", "sni.test"):
        out = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(ca_file),
                              "--resolve", f"{name}:{server.port}:127.0.0.1",
                              f"https://{name}:{server.port}/"], capture_output=True, timeout=20)
        assert (out.returncode, out.stdout) == (0, f"sni {name}\n".encode()), out.stderr
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.params['port4']}",
                          "-servername", "unknown.test"], input=b"", capture_output=True,
                         timeout=20)
    assert b"tlsv1 unrecognized name" in out.stderr and b"SSL alert number 112" in out.stderr
