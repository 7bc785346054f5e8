"""`ssl_stapling`: what `nginx -t` says about it, ngate says (nginx's warnings when it cannot
staple, its errors for a bad `ssl_stapling_file`), and a response given with `ssl_stapling_file`
is stapled to the handshakes that ask for one (checked with `openssl s_client -status` against
both programs). Responses fetched from OCSP responders: test_tls_ocsp_fetch.py.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.harness.processes import NGINX_BIN, REPO_ROOT, ProxyProcess, fresh_prefix, require_kind


def _openssl(*args, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a leaf with an OCSP responder URL (and its chain file), a leaf without one, and a
    DER OCSP response for the first leaf made by `openssl ocsp`."""
    d = tmp_path_factory.mktemp("stapling")
    (d / "logs").mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-subj", "/CN=stapling-ca", "-days", "30", cwd=d)
    (d / "aia.cnf").write_text("authorityInfoAccess=OCSP;URI:http://127.0.0.1:9/\n"
                               "subjectAltName=DNS:a.test\n")
    (d / "plain.cnf").write_text("subjectAltName=DNS:b.test\n")
    for name, ext in (("aia", "aia.cnf"), ("plain", "plain.cnf")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}.test", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "30", "-extfile", ext, cwd=d)
        (d / f"{name}-chain.pem").write_bytes((d / f"{name}.pem").read_bytes()
                                              + (d / "ca.pem").read_bytes())
    (d / "index.txt").write_text("")
    _openssl("ocsp", "-issuer", "ca.pem", "-cert", "aia.pem", "-reqout", "req.der", "-no_nonce",
             cwd=d)
    _openssl("ocsp", "-index", "index.txt", "-rsigner", "ca.pem", "-rkey", "ca.key", "-CA",
             "ca.pem", "-reqin", "req.der", "-respout", "resp.der", "-ndays", "7", cwd=d)
    return d


CASES = {
    "issuer": "ssl_certificate plain.pem; ssl_certificate_key plain.key;",
    "no-url": "ssl_certificate plain-chain.pem; ssl_certificate_key plain.key;",
    "trusted": "ssl_certificate plain.pem; ssl_certificate_key plain.key;\n"
               " ssl_trusted_certificate ca.pem;",
    "prefix": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;\n"
              " ssl_stapling_responder https://127.0.0.1/; ssl_stapling_verify on;",
    "bad-file": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;\n"
                " ssl_stapling_file aia.key;",
    "no-file": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;\n"
               " ssl_stapling_file nope.der;",
    "file": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;\n"
            " ssl_stapling_file resp.der;",
    "fetch": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;",
    "host": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;\n"
            " ssl_stapling_responder http://no-such-host.invalid/;",
    "port": "ssl_certificate aia-chain.pem; ssl_certificate_key aia.key;\n"
            " ssl_stapling_responder http://127.0.0.1:99999/;",
}


def _test(kind: str, d, body: str) -> tuple[int, list[str]]:
    path = d / f"{kind}.conf"
    path.write_text("events {}\nhttp {\n server {\n listen 127.0.0.1:8443 ssl;\n"
                    f" ssl_stapling on;\n {body}\n }}\n}}\n")
    exe = [NGINX_BIN] if kind == "nginx" else [sys.executable, "-m", "ngate"]
    out = subprocess.run([*exe, "-t", "-p", f"{d}/", "-c", str(path)], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=30)
    lines = [re.sub(r"^.*\[(warn|emerg)\] (\d+#\d+: )?", r"[\1] ", line)
             for line in out.stderr.splitlines() if "[warn]" in line or "[emerg]" in line]
    return out.returncode, lines


@pytest.mark.parametrize("case", list(CASES))
def test_t_says_what_nginx_says(pki, case):
    require_kind("nginx")
    assert _test("ngate", pki, CASES[case]) == _test("nginx", pki, CASES[case])


def test_t_messages(pki):
    """The wording itself (so the comparison above cannot pass on two empty outputs)."""
    assert _test("ngate", pki, CASES["issuer"]) == (0, [
        f'[warn] "ssl_stapling" ignored, issuer certificate not found for certificate '
        f'"{pki}/plain.pem"'])
    assert _test("ngate", pki, CASES["no-url"])[1] == [
        f'[warn] "ssl_stapling" ignored, no OCSP responder URL in the certificate '
        f'"{pki}/plain-chain.pem"']
    rc, lines = _test("ngate", pki, CASES["bad-file"])
    assert rc == 1 and lines[0].startswith(f'[emerg] d2i_OCSP_RESPONSE_bio("{pki}/aia.key") '
                                           "failed (SSL: error:")
    assert _test("ngate", pki, CASES["file"]) == (0, [])


def test_no_warning_where_responses_are_fetched(pki):
    rc, lines = _test("ngate", pki, CASES["fetch"])
    assert rc == 0 and lines == []
    assert _test("ngate", pki, CASES["host"])[1] == [
        '[warn] "ssl_stapling" ignored, host not found in OCSP responder '
        f'"no-such-host.invalid/" in the certificate "{pki}/aia-chain.pem"']


SERVE = """
http {
    access_log off;
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/aia-chain.pem;
        ssl_certificate_key {pki}/aia.key;
        ssl_stapling on;
        ssl_stapling_file {pki}/resp.der;
        return 200 "ok\\n";
    }
    server {
        listen 127.0.0.1:{port} ssl;
        server_name b.test;
        ssl_certificate {pki}/plain-chain.pem;
        ssl_certificate_key {pki}/plain.key;
        return 200 "b\\n";
    }
}
"""


def _status(port: int, servername: str, ask: bool = True) -> str:
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername]
    out = subprocess.run(args + (["-status"] if ask else []), input="", capture_output=True,
                         text=True, timeout=30)
    m = re.search(r"^OCSP response: ?(.*?)^-{5}BEGIN|^OCSP response: no response sent",
                  out.stdout, re.S | re.M)
    if not ask:
        return "OCSP" if "OCSP response" in out.stdout else ""
    assert m, out.stdout
    return re.sub(r"^.*(Produced At|This Update|Next Update).*$", "", m.group(0), flags=re.M)


@pytest.mark.parametrize("kind", ["nginx", "ngate"])
def test_stapling_file_is_stapled(pki, tmp_path, kind):
    require_kind(kind)
    proc = ProxyProcess(kind, SERVE, fresh_prefix(tmp_path, kind), pki=pki).start()
    try:
        stapled = _status(proc.port, "a.test")
        assert "OCSP Response Status: successful (0x0)" in stapled
        assert "Responder Id: CN = stapling-ca" in stapled and "Cert Status: " in stapled
        assert "no response sent" in _status(proc.port, "b.test")   # no stapling there
        assert _status(proc.port, "a.test", ask=False) == ""        # not asked: not sent
    finally:
        proc.stop()
