"""`ssl_stapling on` without `ssl_stapling_file`: the response is fetched from the certificate's
OCSP responder (a real `openssl ocsp` responder here), one per certificate (an RSA and an ECDSA
certificate of one server each get their own), and stapled to the handshakes that ask once it
has come; a revoked certificate, a response that does not verify and a responder that cannot be
reached staple nothing and are logged in nginx's words. Every case runs against nginx too
(`openssl s_client -status` reads the staple).
"""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.harness.ocsp import ca_conf
from tests.harness.processes import (ProxyProcess, free_port, fresh_prefix, require_kind,
                                     terminate, wait_for, wait_log)

KINDS = ["nginx", "ngate"]


def _openssl(*args, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; leaves `rsa`, `ec` (ECDSA) and `revoked` (revoked) whose AIA names the responder;
    the responder (`openssl ocsp -index`, signing with the CA's key) on that port; `other.pem`,
    a CA that signed none of them."""
    d = tmp_path_factory.mktemp("ocsp-fetch")
    port = free_port()
    ca_conf(d, "ca", port)                 # d/ca.conf: leaves naming the responder
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-subj", f"/CN=ocsp-{ca}", "-days", "30", cwd=d)
    _openssl("ecparam", "-genkey", "-name", "prime256v1", "-out", "ec.key", cwd=d)
    _openssl("req", "-new", "-key", "ec.key", "-out", "ec.csr", "-subj", "/CN=ec", cwd=d)
    for name in ("rsa", "revoked"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    for name in ("rsa", "ec", "revoked"):
        _openssl("ca", "-batch", "-config", "ca.conf", "-keyfile", "ca.key", "-cert", "ca.pem",
                 "-in", f"{name}.csr", "-out", f"{name}.pem", cwd=d)
        (d / f"{name}-chain.pem").write_bytes((d / f"{name}.pem").read_bytes()
                                              + (d / "ca.pem").read_bytes())
    _openssl("ca", "-config", "ca.conf", "-keyfile", "ca.key", "-cert", "ca.pem", "-revoke",
             "revoked.pem", cwd=d)
    rogue = free_port()
    responders = [_responder(d, port, "ca"), _responder(d, rogue, "other")]
    try:
        for p in (port, rogue):
            wait_for(lambda: _answers(d, p), "the OCSP responder")
        d.joinpath("rogue").write_text(str(rogue))
        yield d
    finally:
        for r in responders:
            terminate(r)


def _responder(d, port: int, signer: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner",
         f"{signer}.pem", "-rkey", f"{signer}.key", "-CA", "ca.pem", "-ndays", "1",
         "-ignore_err"],
        cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _answers(d, port: int) -> bool:
    """The responder answers a request (a bare connect would block it: it serves one
    connection at a time, and waits for the request of this one)."""
    out = subprocess.run(["openssl", "ocsp", "-issuer", "ca.pem", "-cert", "rsa.pem", "-url",
                          f"http://127.0.0.1:{port}/", "-timeout", "5", "-noverify"],
                         cwd=d, capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and "rsa.pem: good" in out.stdout


def _serial(pki, name: str) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(pki / f"{name}.pem"), "-noout",
                          "-serial"], capture_output=True, text=True, check=True)
    return out.stdout.strip().split("=")[1]


def _status(port: int, sigalgs: str, servername: str = "localhost") -> str:
    """What `openssl s_client -status` says about the staple: "none", or its text."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-status",
                          "-sigalgs", sigalgs, "-tls1_2", "-servername", servername],
                         input="", capture_output=True, text=True, timeout=30)
    if "OCSP response: no response sent" in out.stdout:
        return "none"
    m = re.search(r"^OCSP response: ?\n={10,}\n(.*?)^={10,}", out.stdout, re.S | re.M)
    assert m, out.stdout + out.stderr
    return m.group(1)


RSA = "RSA+SHA256"
ECDSA = "ECDSA+SHA256"

TWO_CERTS = """
http {
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/rsa-chain.pem;
        ssl_certificate_key {pki}/rsa.key;
        ssl_certificate {pki}/ec-chain.pem;
        ssl_certificate_key {pki}/ec.key;
        ssl_stapling on;
        ssl_stapling_verify on;
        ssl_trusted_certificate {pki}/ca.pem;
        return 200 "ok\\n";
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name sni.test;
        ssl_certificate {pki}/ec-chain.pem;
        ssl_certificate_key {pki}/ec.key;
        ssl_stapling on;
        return 200 "sni\\n";
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name off.test;
        ssl_certificate {pki}/ec-chain.pem;
        ssl_certificate_key {pki}/ec.key;
        ssl_stapling off;
        return 200 "off\\n";
    }
}
"""


def _stapled(port: int, sigalgs: str, servername: str = "localhost") -> str:
    """The staple once it has come: handshakes before the fetch finished get none."""
    return wait_for(lambda: (lambda s: s if s != "none" else "")(
        _status(port, sigalgs, servername)), "a stapled response", timeout=20)


@pytest.mark.parametrize("kind", KINDS)
def test_each_certificate_gets_its_own_fetched_response(pki, tmp_path, kind):
    require_kind(kind)
    with ProxyProcess(kind, TWO_CERTS, fresh_prefix(tmp_path, kind), pki=pki) as proc:
        for sigalgs, name in ((RSA, "rsa"), (ECDSA, "ec")):
            stapled = _stapled(proc.port, sigalgs)
            assert "OCSP Response Status: successful (0x0)" in stapled
            assert f"Serial Number: {_serial(pki, name)}" in stapled
            assert "Cert Status: good" in stapled
            assert "Responder Id: CN = ocsp-ca" in stapled
        # a server chosen by SNI staples its own certificate's response
        stapled = _stapled(proc.port, ECDSA, "sni.test")
        assert f"Serial Number: {_serial(pki, 'ec')}" in stapled
        assert "Cert Status: good" in stapled
        assert _status(proc.port, ECDSA, "off.test") == "none"      # not the default's staple
        assert "[crit]" not in proc.error_log() and "[alert]" not in proc.error_log()


ONE_CERT = """
http {
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/{cert}-chain.pem;
        ssl_certificate_key {pki}/{cert}.key;
        ssl_stapling on;
        {extra}
        return 200 "ok\\n";
    }
}
"""

CONTEXT = (r' while requesting certificate status, responder: 127\.0\.0\.1, '
           r'peer: 127\.0\.0\.1:\d+, certificate: "[^"]+/{cert}-chain\.pem"')

FAILURES = {
    # a revoked certificate's response is not stapled
    "revoked": ("revoked", "", r'\[error\] .*certificate status "revoked" in the OCSP response'),
    # signed by a CA nobody trusts (a responder signing with `other`)
    "untrusted": ("rsa", "ssl_stapling_verify on; ssl_stapling_responder http://127.0.0.1:{rogue}/;",
                  r"\[error\] .*OCSP_basic_verify\(\) failed \(SSL: error:\S+:OCSP routines::"
                  r"certificate verify error:Verify error:[^)]+\)"),
    # nobody listens there
    "refused": ("rsa", "ssl_stapling_responder http://127.0.0.1:{closed}/;",
                r"\[error\] .*recv\(\) failed \(111: Connection refused\)"),
}


@pytest.mark.parametrize("case", list(FAILURES))
@pytest.mark.parametrize("kind", KINDS)
def test_failures_staple_nothing_and_are_logged(pki, tmp_path, kind, case):
    require_kind(kind)
    cert, extra, line = FAILURES[case]
    extra = extra.replace("{closed}", str(free_port())).replace(
        "{rogue}", (pki / "rogue").read_text())
    conf = ONE_CERT.replace("{extra}", extra)
    with ProxyProcess(kind, conf, fresh_prefix(tmp_path, kind), pki=pki, cert=cert) as proc:
        assert _status(proc.port, RSA) == "none"       # starts the fetch
        wait_log(proc, line + CONTEXT.replace("{cert}", cert), timeout=20)
        assert _status(proc.port, RSA) == "none"
        assert "[crit]" not in proc.error_log() and "[alert]" not in proc.error_log()


def test_failed_fetch_waits_five_minutes(pki, tmp_path):
    """After an error the next fetch is 5 min away: more handshakes do not ask again."""
    conf = ONE_CERT.replace("{extra}", "")
    with ProxyProcess("ngate", conf, fresh_prefix(tmp_path, "ngate"), pki=pki,
                      cert="revoked") as proc:
        _status(proc.port, RSA)
        wait_log(proc, r'certificate status "revoked"', timeout=20)
        for _ in range(3):
            assert _status(proc.port, RSA) == "none"
        time.sleep(0.5)     # a fetch started by the handshakes above would have logged by now
        assert proc.error_log().count('certificate status "revoked"') == 1


BY_NAME = """
http {
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/rsa-chain.pem;
        ssl_certificate_key {pki}/rsa.key;
        ssl_stapling on;
        ssl_stapling_responder http://localhost:{responder}/;
        {resolver}
        return 200 "ok\\n";
    }
}
"""


@pytest.mark.parametrize("kind", KINDS)
def test_responder_name_without_resolver(pki, tmp_path, kind):
    """The addresses found at config time, and nginx's warning at each fetch."""
    require_kind(kind)
    with ProxyProcess(kind, BY_NAME, fresh_prefix(tmp_path, kind), pki=pki, resolver="",
                      responder=_port_of(pki)) as proc:
        assert "Cert Status: good" in _stapled(proc.port, RSA)
        wait_log(proc, r'\[warn\] .*no resolver defined to resolve localhost while requesting '
                       r'certificate status, responder: localhost, certificate: "[^"]+/rsa-chain'
                       r'\.pem"')


@pytest.mark.parametrize("kind", KINDS)
def test_responder_name_with_resolver(pki, tmp_path, kind):
    """The server's `resolver` is asked for the responder's name at each fetch."""
    require_kind(kind)
    from tests.harness.dns_server import Answer, DnsServer
    with DnsServer() as dns:
        dns.zone["localhost"] = Answer(a=["127.0.0.1"])
        resolver = f"resolver 127.0.0.1:{dns.port} ipv6=off;"
        with ProxyProcess(kind, BY_NAME, fresh_prefix(tmp_path, kind), pki=pki,
                          resolver=resolver, responder=_port_of(pki)) as proc:
            assert "Cert Status: good" in _stapled(proc.port, RSA)
            assert dns.asked("localhost") >= 1
            assert "no resolver defined" not in proc.error_log()


def _port_of(pki) -> str:
    text = (pki / "ca.conf").read_text()
    return re.search(r"URI:http://127\.0\.0\.1:(\d+)/", text).group(1)
