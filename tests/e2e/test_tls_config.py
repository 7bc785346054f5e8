"""TLS configuration errors: `ngate -t` says what `nginx -t` says (same message, same place)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import trustme

from tests.harness.processes import NGINX_BIN, REPO_ROOT, require_kind

CASES = [
    "server { listen 127.0.0.1:8443 ssl; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; }",
    "server { listen 8443 ssl; ssl_certificate nope.crt; ssl_certificate_key a.key; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key nope.key; }",
    "server { listen 8443 ssl; ssl_certificate a.key; ssl_certificate_key a.key; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.crt; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_protocols TLSv5; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_ciphers FOO; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_verify_client on; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_verify_client maybe; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_session_cache foo; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_session_timeout abc; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_client_certificate nope.pem; ssl_verify_client on; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_dhparam nope.pem; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_ecdh_curve foo; }",
    "server { listen 8443; location / {\n ssl_certificate a.crt; } }",
    "server {\n listen 8443 ssl default_server; ssl_reject_handshake on; }\n"
    "server {\n listen 8443 ssl; server_name b; }",
    "server { listen 8443; location / { proxy_ssl_certificate a.crt;\n"
    " proxy_pass https://127.0.0.1; } }",
    "server { listen 8443; location / { proxy_ssl_verify on; proxy_pass https://127.0.0.1; } }",
    "server { listen 8443; location / { proxy_ssl_trusted_certificate nope.pem;\n"
    " proxy_ssl_verify on; proxy_pass https://127.0.0.1; } }",
    "server { listen 8443; location / { proxy_ssl_certificate nope.pem;\n"
    " proxy_ssl_certificate_key a.key; proxy_pass https://127.0.0.1; } }",
]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsconf")
    (d / "logs").mkdir()
    cert = trustme.CA().issue_cert("a.test")
    cert.cert_chain_pems[0].write_to_path(str(d / "a.crt"))
    cert.private_key_pem.write_to_path(str(d / "a.key"))
    return d


def first_error(kind: str, prefix, conf: str) -> str:
    path = prefix / f"{kind}.conf"
    path.write_text(f"events {{}}\nhttp {{\n{conf}\n}}\n")
    exe = [NGINX_BIN] if kind == "nginx" else [sys.executable, "-m", "ngate"]
    out = subprocess.run([*exe, "-t", "-p", f"{prefix}/", "-c", str(path)], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=30)
    lines = [l for l in out.stderr.splitlines() if "[emerg]" in l]
    assert out.returncode == 1 and lines, out.stderr
    return re.sub(r"^.*\[emerg\] (\d+#\d+: )?", "", lines[0]).replace(f"{kind}.conf", "X.conf")


@pytest.mark.parametrize("conf", CASES)
def test_tls_config_error_as_nginx(prefix, conf):
    require_kind("nginx")
    assert first_error("ngate", prefix, conf) == first_error("nginx", prefix, conf)
