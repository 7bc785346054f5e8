"""TLS on the client side, nginx vs ngate on the same config: client certificates
(`ssl_verify_client on|optional|optional_no_ca`, `ssl_verify_depth`, $ssl_client_verify and the
400 pages), 421 when the Host header leaves the SNI server for one that verifies clients, session
resumption ($ssl_session_reused with tickets, a shared cache, neither, an expired timeout) and
`ssl_ecdh_curve` lists. Clients are Python's ssl module; every certificate comes from
tests/harness/pki.py, one root per module (`root.pem`)."""
from __future__ import annotations

import re
import ssl
import subprocess
import time

import pytest
from tests.harness.client import Connection, Response, build_request
from tests.harness.pki import Pki

PROTOCOLS = "ssl_protocols TLSv1.2 TLSv1.3;   # nginx 1.22's default lacks TLSv1.3"
ANSWER = 'return 200 "$server_name $ssl_client_verify $ssl_client_s_dn\\n";'


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.leaf("server", "a.test", "b.test", "www.b.test", "c.test")
    p.leaf("client", "client@example.test", common_name="client one")
    int1, int2, int3 = p.chain(3)
    p.leaf("client_int1", "one@example.test", common_name="one", issuer=int1)
    p.leaf("client_int2", "two@example.test", common_name="two", issuer=int2)
    p.leaf("client_int3", "three@example.test", common_name="three", issuer=int3)
    other = Pki(p.dir / "other")               # a root the servers do not know
    other.leaf("stranger", "stranger@example.test", common_name="stranger")
    other.leaf("stranger_int", "far@example.test", common_name="far", issuer=other.chain(1)[0])
    for name in ("stranger", "stranger_int"):
        (p.dir / f"{name}.pem").write_bytes((other.dir / f"{name}.pem").read_bytes())
        (p.dir / f"{name}.pem").chmod(0o644)
    p.self_signed("selfsigned")
    return p


def port_of(pair, port, key: str) -> int:
    """The port called `key` in the program whose main port is `port`."""
    return next(p for p in pair.procs.values() if p.port == port).params[key]


def client_context(pki: Pki, cert: str | None = None, version: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.path("root.pem")))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(str(pki.path(f"{cert}.pem")))
    if version:
        ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    return ctx


def tls_get(port: int, ctx: ssl.SSLContext, sni: str | None, host: bytes, target: str = "/",
            session: ssl.SSLSession | None = None) -> tuple[Response, ssl.SSLSession, bool]:
    """One GET over a fresh TLS connection offering `session`: the response, the connection's
    session (taken after the response: TLSv1.3 tickets come after the handshake) and whether the
    client saw it resumed."""
    with Connection(port) as conn:
        conn.sock = ctx.wrap_socket(conn.sock, server_hostname=sni, session=session)
        conn.send(build_request("GET", target, host=host))
        resp = conn.read_response()
        return resp, conn.sock.session, conn.sock.session_reused


def logged_during(pair, script):
    """`pair.check(script)` and what each program logged meanwhile: (outcome, {kind: text})."""
    marks = {kind: len(p.error_log()) for kind, p in pair.procs.items()}
    out = pair.check(script)
    time.sleep(0.05)
    return out, {kind: p.error_log()[marks[kind]:] for kind, p in pair.procs.items()}


# ------------------------------------------------------------ client certificates
VERIFY = """
http {
    PROTOCOLS
    ssl_certificate {pki}/server.crt;
    ssl_certificate_key {pki}/server.key;
    server {
        listen 127.0.0.1:{port} ssl;
        server_name on.test;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client on;
        location / { ANSWER }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        server_name optional.test;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client optional;
        location / { ANSWER }
    }
    server {
        listen 127.0.0.1:{port3} ssl;
        server_name no-ca.test;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client optional_no_ca;
        location / { ANSWER }
    }
    server {
        listen 127.0.0.1:{port4} ssl;
        server_name depth2.test;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / { ANSWER }
    }
    server {
        listen 127.0.0.1:{port5} ssl;
        server_name depth0.test;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client optional;
        ssl_verify_depth 0;
        location / { ANSWER }
    }
}
""".replace("PROTOCOLS", PROTOCOLS).replace("ANSWER", ANSWER)


@pytest.fixture(scope="module")
def verify(differential, pki):
    return differential(VERIFY, backends=(), pki=pki.dir)


def ask(pair, pki, port_key: str, cert: str | None, version: str | None = None):
    def script(port):
        ctx = client_context(pki, cert, version)
        return tls_get(port_of(pair, port, port_key), ctx, "x.test", b"x.test")[0]
    return logged_during(pair, script)


def page(status_text: bytes) -> bytes:
    return b"<title>400 %s</title>" % status_text


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_on_without_certificate_is_400(verify, pki, version):
    out, logs = ask(verify, pki, "port", None, version)
    assert out.response.status_line == b"HTTP/1.1 400 Bad Request"
    assert page(b"No required SSL certificate was sent") in out.response.body
    for kind, text in logs.items():
        assert "client sent no required SSL certificate while reading client request headers" \
            in text, kind


def test_optional_without_certificate_is_none(verify, pki):
    out, _ = ask(verify, pki, "port2", None)
    assert out.response.body == b"optional.test NONE \n"


@pytest.mark.parametrize("port_key, name", [("port", "on.test"), ("port2", "optional.test"),
                                            ("port3", "no-ca.test")])
def test_certificate_from_the_root_succeeds(verify, pki, port_key, name):
    out, _ = ask(verify, pki, port_key, "client")
    assert out.response.body == (b"%s SUCCESS CN=client one,OU=Tests,O=Example Org\n"
                                 % name.encode())


UNKNOWN_CA = [
    ("stranger", "21:unable to verify the first certificate"),      # the leaf alone
    ("stranger_int", "20:unable to get local issuer certificate"),  # leaf and intermediate
]


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("port_key", ["port", "port2"])
@pytest.mark.parametrize("cert, reason", UNKNOWN_CA)
def test_unknown_ca_completes_handshake_then_400(verify, pki, port_key, version, cert, reason):
    out, logs = ask(verify, pki, port_key, cert, version)
    assert out.response.status_line == b"HTTP/1.1 400 Bad Request"
    assert page(b"The SSL certificate error") in out.response.body
    for kind, text in logs.items():
        assert (f"client SSL certificate verify error: ({reason})"
                " while reading client request headers") in text, kind


@pytest.mark.parametrize("port_key", ["port", "port2"])
def test_self_signed_is_400(verify, pki, port_key):
    out, logs = ask(verify, pki, port_key, "selfsigned")
    assert page(b"The SSL certificate error") in out.response.body
    for kind, text in logs.items():
        assert "client SSL certificate verify error: (18:self-signed certificate)" in text, kind


@pytest.mark.parametrize("cert, body", [
    ("stranger",
     b"FAILED:unable to verify the first certificate CN=stranger,OU=Tests,O=Example Org"),
    ("stranger_int",
     b"FAILED:unable to get local issuer certificate CN=far,OU=Tests,O=Example Org"),
    ("selfsigned", b"FAILED:self-signed certificate OU=Tests,O=Self Signed"),
])
def test_optional_no_ca_passes_failures_on(verify, pki, cert, body):
    out, _ = ask(verify, pki, "port3", cert)
    assert out.response.status == 200
    assert out.response.body == b"no-ca.test " + body + b"\n"


# nginx's ssl_verify_depth is OpenSSL's: at most N intermediates between the client's
# certificate and the root (the default, 1, allows one). Past it OpenSSL 3 stops building the
# chain, so the error is "unable to get local issuer certificate", not "certificate chain too long".
@pytest.mark.parametrize("port_key, cert, ok", [
    ("port", "client", True),
    ("port", "client_int1", True),
    ("port", "client_int2", False),            # default depth 1: two intermediates are too many
    ("port4", "client_int2", True),
    ("port4", "client_int3", False),
    ("port5", "client", True),                 # depth 0: only a certificate the root issued
    ("port5", "client_int1", False),
])
def test_verify_depth(verify, pki, port_key, cert, ok):
    out, logs = ask(verify, pki, port_key, cert)
    if ok:
        assert out.response.status == 200
        assert b" SUCCESS CN=" in out.response.body
    else:
        assert page(b"The SSL certificate error") in out.response.body
        for kind, text in logs.items():
            assert "client SSL certificate verify error: (20:unable to get local issuer " \
                "certificate)" in text, kind


# ------------------------------------------------------------ 421 Misdirected Request
MISDIRECTED = """
http {
    PROTOCOLS
    ssl_certificate {pki}/server.crt;
    ssl_certificate_key {pki}/server.key;
    server {
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        location / { ANSWER }
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name b.test www.b.test;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client optional;
        location / { ANSWER }
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name c.test;
        location / { ANSWER }
    }
}
""".replace("PROTOCOLS", PROTOCOLS).replace("ANSWER", ANSWER)


@pytest.fixture(scope="module")
def misdirected(differential, pki):
    return differential(MISDIRECTED, backends=(), pki=pki.dir)


# When SNI named a configured server, nginx keeps that server if the Host equals the SNI name
# (compared as strings, so an alias of the same server does not count); otherwise it looks the
# Host up (unknown: the default server) and answers 421 if that server verifies client
# certificates. Without SNI, or with a name no server has, there is no check.
NAMED = {"a.test", "b.test", "www.b.test", "c.test"}
VERIFYING = {b"b.test", b"www.b.test"}


@pytest.mark.parametrize("sni, host, cert", [
    ("a.test", b"a.test", None),
    ("a.test", b"a.test", "client"),
    ("b.test", b"b.test", None),
    ("b.test", b"b.test", "client"),           # verification follows the SNI server
    ("a.test", b"b.test", None),               # into a verifying server: 421
    ("a.test", b"b.test", "client"),
    ("c.test", b"b.test", None),
    ("unknown.test", b"b.test", None),         # SNI matched no server: no 421
    ("www.b.test", b"b.test", "client"),       # the same server under another name
    ("b.test", b"www.b.test", None),
    (None, b"b.test", None),                   # no SNI at all: no 421
    ("b.test", b"a.test", None),               # out of a verifying server: allowed
    ("b.test", b"a.test", "client"),
    ("b.test", b"unknown.test", None),         # the default server does not verify
    ("a.test", b"c.test", None),               # neither verifies
    ("A.TEST", b"b.test", None),
    ("B.TEST", b"b.test", None),               # SNI and Host compared without case
    ("b.test", b"B.Test:443", None),           # and without the port
])
def test_host_differing_from_sni(misdirected, pki, sni, host, cert):
    def script(port):
        return tls_get(port, client_context(pki, cert), sni, host)[0]
    out, logs = logged_during(misdirected, script)
    host_name = host.split(b":")[0].lower()
    sni = sni and sni.lower()
    if sni in NAMED and sni.encode() != host_name and host_name in VERIFYING:
        assert out.response.status_line == b"HTTP/1.1 421 Misdirected Request"
        assert b"<title>421 Misdirected Request</title>" in out.response.body
        for kind, text in logs.items():
            assert "client attempted to request the server name different from the one that " \
                "was negotiated while reading client request headers" in text, kind
    else:
        assert out.response.status == 200


# ------------------------------------------------------------ sessions
SESSIONS = """
http {
    PROTOCOLS
    ssl_certificate {pki}/server.crt;
    ssl_certificate_key {pki}/server.key;
    server {
        listen 127.0.0.1:{port} ssl;
        location / { return 200 "$ssl_session_reused\\n"; }
    }
    server {
        listen 127.0.0.1:{port2} ssl;
        ssl_session_cache shared:SSL:1m;
        location / { return 200 "$ssl_session_reused\\n"; }
    }
    server {
        listen 127.0.0.1:{port3} ssl;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;
        location / { return 200 "$ssl_session_reused\\n"; }
    }
    server {
        listen 127.0.0.1:{port4} ssl;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / { return 200 "$ssl_session_reused\\n"; }
    }
    server {
        listen 127.0.0.1:{port5} ssl;
        ssl_session_cache shared:SSL:1m;
        ssl_session_timeout 1s;
        location / { return 200 "$ssl_session_reused\\n"; }
    }
}
""".replace("PROTOCOLS", PROTOCOLS)


@pytest.fixture(scope="module")
def sessions(differential, pki):
    return differential(SESSIONS, backends=(), pki=pki.dir)


def twice(pair, pki, port_key: str, version: str, pause: float = 0.0):
    """Two connections, the second offering the first one's session; what each reported."""
    def script(port):
        port = port_of(pair, port, port_key)
        ctx = client_context(pki, version=version)
        first, session, _ = tls_get(port, ctx, None, b"x.test")
        time.sleep(pause)
        second, _, reused = tls_get(port, ctx, None, b"x.test", session=session)
        return [first, second, f"client saw reuse: {reused}"]
    return pair.check(script).result


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("port_key, reused", [
    ("port", True),                            # defaults: tickets
    ("port2", True),                           # shared cache (and tickets)
    ("port3", True),                           # shared cache alone
    ("port4", False),                          # neither
])
def test_session_reused(sessions, pki, version, port_key, reused):
    first, second, client_view = twice(sessions, pki, port_key, version)
    assert first.body == b".\n"
    assert second.body == (b"r\n" if reused else b".\n")
    assert client_view == f"client saw reuse: {reused}"


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_timeout_expires(sessions, pki, version):
    first, second, _ = twice(sessions, pki, "port5", version, pause=2.1)
    assert second.body == b".\n"


# ------------------------------------------------------------ ssl_ecdh_curve
CURVES = """
http {
    PROTOCOLS
    ssl_certificate {pki}/server.crt;
    ssl_certificate_key {pki}/server.key;
    ssl_ecdh_curve prime256v1:secp384r1;
    server {
        listen 127.0.0.1:{port} ssl;
        location / { return 200 "$ssl_protocol\\n"; }
    }
}
""".replace("PROTOCOLS", PROTOCOLS)


@pytest.fixture(scope="module")
def curves(differential, pki):
    return differential(CURVES, backends=(), pki=pki.dir)


def s_client(port: int, *options: str) -> str:
    """openssl s_client's verdict: the handshake's outcome, the key-exchange group, the status."""
    proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "x.test", "-ign_eof", *options],
                          input=b"GET / HTTP/1.0\r\nHost: x.test\r\n\r\n", capture_output=True,
                          timeout=10)
    out = proc.stdout.decode(errors="replace")
    group = re.search(r"^(?:Server|Peer) Temp Key: ([^\n]*)", out, re.M)
    status = re.search(r"^HTTP/1\.1 .*$", out, re.M)
    return (f"rc={proc.returncode} group={group and group.group(1)!r} "
            f"status={status and status.group(0).strip()!r}")


@pytest.mark.parametrize("options, group", [
    (("-tls1_3", "-groups", "X25519"), None),
    (("-tls1_3", "-groups", "secp384r1"), "ECDH, secp384r1, 384 bits"),
    (("-tls1_3", "-groups", "X25519:prime256v1"), "ECDH, prime256v1, 256 bits"),
    (("-tls1_3",), "ECDH, prime256v1, 256 bits"),
    (("-tls1_3", "-groups", "X25519:secp384r1"), "ECDH, secp384r1, 384 bits"),   # after a retry
    (("-tls1_2", "-groups", "X25519"), None),
    # TLSv1.2: the client's groups also bound the (P-256) certificate, and it chooses the order
    (("-tls1_2", "-groups", "secp384r1:prime256v1"), "ECDH, secp384r1, 384 bits"),
    (("-tls1_2", "-groups", "X25519:prime256v1"), "ECDH, prime256v1, 256 bits"),
])
def test_ecdh_curve_list(curves, options, group):
    out = curves.check(lambda port: s_client(port, *options))
    if group is None:
        assert out.result.startswith("rc=1 group=None status=None")
    else:
        assert out.result == f"rc=0 group={group!r} status='HTTP/1.1 200 OK'"
