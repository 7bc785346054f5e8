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
    "server { listen 8443 ssl; ssl_certificate data:garbage; ssl_certificate_key a.key; }",
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key data:garbage; }",
    "server { listen 8443 ssl; ssl_certificate $ssl_server_name.crt; }",
    "server {\n listen 8443 ssl default_server; ssl_reject_handshake on; }\n"
    "server {\n listen 8443 ssl; server_name b; }",
    "server { listen 8443; location / { proxy_ssl_certificate a.crt;\n"
    " proxy_pass https://127.0.0.1; } }",
    "server { listen 8443; location / { proxy_ssl_verify on; proxy_pass https://127.0.0.1; } }",
    "server { listen 8443; location / { proxy_ssl_trusted_certificate nope.pem;\n"
    " proxy_ssl_verify on; proxy_pass https://127.0.0.1; } }",
    "server { listen 8443; location / { proxy_ssl_certificate nope.pem;\n"
    " proxy_ssl_certificate_key a.key; proxy_pass https://127.0.0.1; } }",
    # the password file is read with its directive: the error names its line
    "server { listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;\n"
    " ssl_password_file nope.txt; }",
    "server { listen 8443; location / {\n proxy_ssl_password_file nope.txt;\n"
    " proxy_pass https://127.0.0.1; } }",
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


RELATIVE = """events {}
http {
    ssl_password_file pass.txt;
    server {
        listen 127.0.0.1:8443 ssl;
        ssl_certificate certs/a.crt;
        ssl_certificate_key certs/a.key;
        ssl_dhparam certs/dh.pem;
        ssl_client_certificate certs/ca.pem;
        ssl_trusted_certificate certs/ca.pem;
        ssl_crl certs/crl.pem;
        ssl_verify_client optional;
        location / {
            proxy_pass https://127.0.0.1:9;
            proxy_ssl_certificate certs/a.crt;
            proxy_ssl_certificate_key certs/a.key;
            proxy_ssl_trusted_certificate certs/ca.pem;
            proxy_ssl_password_file pass.txt;
            proxy_ssl_verify on;
        }
    }
}
"""


@pytest.fixture(scope="module")
def split_dirs(tmp_path_factory):
    """A prefix with nothing but logs/, and the config with its certificates elsewhere."""
    base = tmp_path_factory.mktemp("relative")
    prefix, conf = base / "prefix", base / "etc" / "site"
    (prefix / "logs").mkdir(parents=True)
    (conf / "certs").mkdir(parents=True)
    ca = trustme.CA()
    cert = ca.issue_cert("a.test")
    cert.cert_chain_pems[0].write_to_path(str(conf / "certs" / "a.crt"))
    cert.private_key_pem.write_to_path(str(conf / "certs" / "a.key"))
    ca.cert_pem.write_to_path(str(conf / "certs" / "ca.pem"))
    subprocess.run(["openssl", "dhparam", "-dsaparam", "-out", str(conf / "certs" / "dh.pem"),
                    "2048"], check=True, capture_output=True, timeout=60)
    (conf / "pass.txt").write_text("unused\n")
    key = conf / "certs" / "ca.key"
    ca.private_key_pem.write_to_path(str(key))
    (conf / "certs" / "index.txt").write_text("")
    (conf / "certs" / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_crl_days = 30\n"
        "default_md = sha256\n")
    subprocess.run(["openssl", "ca", "-gencrl", "-config", "ca.cnf", "-keyfile", "ca.key",
                    "-cert", "ca.pem", "-out", "crl.pem"], cwd=conf / "certs", check=True,
                   capture_output=True, timeout=60)
    (conf / "nginx.conf").write_text(RELATIVE)
    return prefix, conf


@pytest.mark.parametrize("kind", ["nginx", "ngate"])
def test_relative_tls_files_resolve_against_the_config_directory(split_dirs, kind):
    """nginx resolves these with ngx_conf_full_name(.., 1): the main config file's directory,
    not -p (which root, pid and logs use)."""
    require_kind(kind)
    prefix, conf = split_dirs
    exe = [NGINX_BIN] if kind == "nginx" else [sys.executable, "-m", "ngate"]
    out = subprocess.run([*exe, "-t", "-p", f"{prefix}/", "-c", str(conf / "nginx.conf")],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def test_missing_relative_certificate_names_the_config_directory(split_dirs):
    prefix, conf = split_dirs
    bad = conf / "bad.conf"
    bad.write_text("events {}\nhttp { server { listen 127.0.0.1:8443 ssl;\n"
                   "ssl_certificate certs/nope.crt; ssl_certificate_key certs/a.key; } }\n")
    errors = []
    for kind in ("nginx", "ngate"):
        require_kind(kind)
        exe = [NGINX_BIN] if kind == "nginx" else [sys.executable, "-m", "ngate"]
        out = subprocess.run([*exe, "-t", "-p", f"{prefix}/", "-c", str(bad)],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
        assert out.returncode == 1
        errors.append(re.sub(r"^.*\[emerg\] (\d+#\d+: )?", "",
                             next(l for l in out.stderr.splitlines() if "[emerg]" in l)))
    assert errors[0] == errors[1]
    assert f'"{conf}/certs/nope.crt"' in errors[1]
