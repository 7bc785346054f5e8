"""`ssl_ocsp`: client certificates checked with OCSP after the handshake (real `openssl ocsp`
responders), against nginx: a good certificate passes ($ssl_client_verify SUCCESS), a revoked
one gets 400 "The SSL certificate error" with FAILED:certificate revoked, a responder that
cannot be reached FAILED:certificate status request failed; `leaf` checks the client's
certificate only, `on` its intermediate too; ssl_ocsp_cache is shared by the workers.
"""
from __future__ import annotations

import re
import socket
import ssl
import subprocess

import pytest

from tests.harness.ocsp import answers, ca_conf, openssl, responder
from tests.harness.processes import (ProxyProcess, free_port, fresh_prefix, require_kind,
                                     terminate, wait_for, wait_log)

KINDS = ["nginx", "ngate"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """root -> int (its AIA: a port nobody listens on) -> `good` and `revoked` (their AIA: a
    responder for int's certificates); a self-signed server certificate."""
    d = tmp_path_factory.mktemp("ocsp-client")
    port = free_port()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("2000\n")
    for name in ("root", "server"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.pem", "-subj", f"/CN=ocsp-{name}", "-days", "30",
                "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
    for name in ("int", "good", "revoked"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("ca", "-batch", "-config", ca_conf(d, "root-ca", free_port(), ca=True), "-keyfile",
            "root.key", "-cert", "root.pem", "-in", "int.csr", "-out", "int.pem", cwd=d)
    for name in ("good", "revoked"):
        openssl("ca", "-batch", "-config", ca_conf(d, "int-ca", port), "-keyfile", "int.key",
                "-cert", "int.pem", "-in", f"{name}.csr", "-out", f"{name}.pem", cwd=d)
        (d / f"{name}-chain.pem").write_bytes((d / f"{name}.pem").read_bytes()
                                              + (d / "int.pem").read_bytes())
    openssl("ca", "-config", str(d / "int-ca.conf"), "-keyfile", "int.key", "-cert", "int.pem",
            "-revoke", "revoked.pem", cwd=d)
    proc = responder(d, port, "int", "int")
    try:
        wait_for(lambda: answers(d, port, "int", "good"), "the OCSP responder")
        yield d
    finally:
        terminate(proc)


CONF = """
worker_processes {workers};
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log {prefix}/logs/access.log;
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/server.pem;
        ssl_certificate_key {pki}/server.key;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_client_certificate {pki}/root.pem;
        ssl_ocsp {mode};
        {extra}
        add_header X-Verify $ssl_client_verify always;
        add_header X-Pid $pid always;
        return 200 "ok\\n";
    }
}
"""


def _get(port: int, pki, cert: str) -> tuple[int, str, str]:
    """(status, X-Verify, X-Pid) of a request made with the client certificate `cert`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(pki / f"{cert}-chain.pem"), str(pki / f"{cert}.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    verify = re.search(r"^X-Verify: (.*)$", head, re.M | re.I)
    pid = re.search(r"^X-Pid: (.*)$", head, re.M | re.I)
    return (int(head.split(" ", 2)[1]), verify.group(1).strip() if verify else "",
            pid.group(1).strip() if pid else "")


def _start(kind: str, tmp_path, pki, mode: str, extra: str = "", workers: int = 1):
    return ProxyProcess(kind, CONF, fresh_prefix(tmp_path, kind), pki=pki, mode=mode,
                        extra=extra, workers=workers).start()


CASES = {
    "good": ("leaf", "good", "", 200, "SUCCESS", None),
    "revoked": ("leaf", "revoked", "", 400, "FAILED:certificate revoked",
                r"\[info\] .*client SSL certificate verify error: certificate revoked while "
                r"reading client request headers"),
    # `on` checks int too, whose responder does not answer
    "chain": ("on", "good", "", 400, "FAILED:certificate status request failed",
              r"\[error\] .*\*\d+ recv\(\) failed \(111: Connection refused\) while requesting "
              r"certificate status, responder: 127\.0\.0\.1, peer: 127\.0\.0\.1:\d+$"),
    "responder": ("leaf", "good", "ssl_ocsp_responder http://127.0.0.1:{closed}/;", 400,
                  "FAILED:certificate status request failed",
                  r"\[info\] .*client SSL certificate verify error: certificate status request "
                  r"failed while reading client request headers"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_client_certificate_checked_with_ocsp(pki, tmp_path, kind, case):
    require_kind(kind)
    mode, cert, extra, status, verify, line = CASES[case]
    proc = _start(kind, tmp_path, pki, mode, extra.replace("{closed}", str(free_port())))
    try:
        assert _get(proc.port, pki, cert)[:2] == (status, verify)
        if line:
            wait_log(proc, "(?m)" + line)
        if case == "chain":     # the check and the request log with one connection number
            text = wait_log(proc, "certificate verify error")
            numbers = re.findall(r"\*(\d+) (?:recv|OCSP responder|client SSL)", text)
            assert len(numbers) == 3 and len(set(numbers)) == 1, text
        assert "[crit]" not in proc.error_log() and "[alert]" not in proc.error_log()
    finally:
        proc.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_cache_is_shared_by_the_workers(pki, tmp_path, kind):
    """One worker asks the responder; once it is gone every worker still answers from the
    cache (a worker with a cache of its own would fail to reach it)."""
    require_kind(kind)
    port = free_port()
    own = responder(pki, port, "int", "int")
    extra = (f"ssl_ocsp_responder http://127.0.0.1:{port}/; "
             "ssl_ocsp_cache shared:OCSP:1m;")
    proc = None
    try:
        wait_for(lambda: answers(pki, port, "int", "good"), "the OCSP responder")
        proc = _start(kind, tmp_path, pki, "leaf", extra, workers=2)
        assert _get(proc.port, pki, "good")[:2] == (200, "SUCCESS")
        terminate(own)
        pids = set()
        for _ in range(60):
            status, verify, pid = _get(proc.port, pki, "good")
            assert (status, verify) == (200, "SUCCESS")
            pids.add(pid)
            if len(pids) == 2:
                break
        assert len(pids) == 2, "one worker answered every connection"
    finally:
        terminate(own)
        if proc is not None:
            proc.stop()


CHECKS = {
    "no-ca": "ssl_verify_client optional_no_ca; ssl_ocsp on;",
    "prefix": "ssl_ocsp on; ssl_ocsp_responder https://127.0.0.1/;",
    "cache": "ssl_ocsp on; ssl_ocsp_cache shared:OCSP:1k;",
    "cache-name": "ssl_ocsp on; ssl_ocsp_cache OCSP:1m;",
    "mode": "ssl_ocsp maybe;",
}


def _test(kind: str, d, body: str) -> tuple[int, list[str]]:
    path = d / f"check-{kind}.conf"
    path.write_text("events {}\nhttp {\n server {\n listen 127.0.0.1:8443 ssl;\n"
                    f" ssl_certificate server.pem; ssl_certificate_key server.key;\n"
                    f" ssl_client_certificate root.pem;\n {body}\n }}\n}}\n")
    from tests.harness.processes import NGINX_BIN, REPO_ROOT
    import sys
    exe = [NGINX_BIN] if kind == "nginx" else [sys.executable, "-m", "ngate"]
    out = subprocess.run([*exe, "-t", "-p", f"{d}/", "-c", str(path)], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=30)
    lines = [re.sub(r"^.*\[(warn|emerg)\] (\d+#\d+: )?", r"[\1] ", line).replace(
        f"check-{kind}.conf", "X.conf")
        for line in out.stderr.splitlines() if "[warn]" in line or "[emerg]" in line]
    return out.returncode, lines


@pytest.mark.parametrize("case", list(CHECKS))
def test_t_says_what_nginx_says(pki, case):
    require_kind("nginx")
    ngate = _test("ngate", pki, CHECKS[case])
    assert ngate[0] == 1 and ngate == _test("nginx", pki, CHECKS[case])
