"""OCSP test helpers: `openssl ca` certificates whose AIA names a responder, and real
`openssl ocsp -index` responders (tests/e2e/test_tls_ocsp_*.py)."""
from __future__ import annotations

import subprocess


def openssl(*args, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def ca_conf(d, name: str, responder_port: int, ca: bool = False) -> str:
    """An `openssl ca` config writing into d's shared index.txt/serial; its certificates name
    http://127.0.0.1:<responder_port>/ as their OCSP responder."""
    text = f"""
[ ca ]
default_ca = myca
[ myca ]
new_certs_dir = {d}
database = {d}/index.txt
default_md = sha256
policy = myca_policy
serial = {d}/serial
default_days = 3
x509_extensions = ext
[ myca_policy ]
commonName = supplied
[ ext ]
basicConstraints = critical,CA:{"TRUE" if ca else "FALSE"}
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{responder_port}/
"""
    path = d / f"{name}.conf"
    path.write_text(text)
    return str(path)


def responder(d, port: int, ca: str, signer: str) -> subprocess.Popen:
    """`openssl ocsp` answering for certificates `ca` issued (index.txt), signing with
    `signer`; it serves one connection at a time (a bare connect blocks it: see answers())."""
    return subprocess.Popen(
        ["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner",
         f"{signer}.pem", "-rkey", f"{signer}.key", "-CA", f"{ca}.pem", "-ndays", "1",
         "-ignore_err"],
        cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def answers(d, port: int, issuer: str, cert: str) -> bool:
    """The responder on `port` answers a request about `cert`."""
    out = subprocess.run(["openssl", "ocsp", "-issuer", f"{issuer}.pem", "-cert", f"{cert}.pem",
                          "-url", f"http://127.0.0.1:{port}/", "-timeout", "5", "-noverify"],
                         cwd=d, capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and f"{cert}.pem: " in out.stdout
