"""The $ssl_* variables read from OpenSSL (ngate/server/ssl_vars.py), nginx vs ngate on the same
config and the same client: the client certificate as PEM (raw, tabbed, escaped), its issuer and
subject (RFC 2253 and legacy), serial, fingerprint, validity, and the handshake's ciphers, curve and
curves; $ssl_session_id as 64 hex digits (a random value: compared by form), $ssl_early_data empty."""
from __future__ import annotations

import re
import pytest

from tests.differential.test_tls_verify import client_context, port_of, tls_get
from tests.harness.client import request
from tests.harness.pki import Pki

VARS = ("ssl_client_raw_cert ssl_client_cert ssl_client_escaped_cert ssl_client_s_dn "
        "ssl_client_i_dn ssl_client_s_dn_legacy ssl_client_i_dn_legacy ssl_client_serial "
        "ssl_client_fingerprint ssl_client_v_start ssl_client_v_end ssl_client_v_remain "
        "ssl_ciphers ssl_curve ssl_curves ssl_early_data ssl_alpn_protocol").split()
ANSWER = "".join(f"{v}=[${v}]\\n" for v in VARS)

CONF = """
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {pki}/server.crt;
    ssl_certificate_key {pki}/server.key;
    server {
        listen 127.0.0.1:{port} ssl;
        ssl_client_certificate {pki}/root.pem;
        ssl_verify_client optional_no_ca;
        ssl_session_cache shared:SSL:1m;
        location / { return 200 "ANSWER"; }
        location /id { return 200 "$ssl_session_id"; }
    }
    server {
        listen 127.0.0.1:{port2};
        location / { return 200 "plain [$ssl_session_id$ssl_curve$ssl_client_raw_cert]"; }
    }
}
""".replace("ANSWER", ANSWER)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.leaf("server", "a.test")
    p.leaf("client", "client@example.test", common_name="client, one+two")
    p.self_signed("selfsigned")
    return p


@pytest.fixture(scope="module")
def pair(differential, pki):
    return differential(CONF, backends=(), pki=pki.dir)


@pytest.mark.parametrize("cert", ["client", "selfsigned", None])
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_variables_match_nginx(pair, pki, cert, version):
    def script(port):
        ctx = client_context(pki, cert, version)
        ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
        ctx.set_alpn_protocols(["http/1.1"])
        return tls_get(port, ctx, "a.test", b"a.test")[0]
    out = pair.check(script)
    body = out.response.body.decode()
    if cert:
        assert "ssl_client_raw_cert=[-----BEGIN CERTIFICATE-----\n" in body
        assert re.search(r"ssl_client_v_remain=\[\d+\]", body)


def test_session_id_and_plain_connection(pair, pki):
    def script(port):
        ctx = client_context(pki, None, "TLSv1_2")
        first, session, _ = tls_get(port, ctx, "a.test", b"a.test", "/id")
        again, _, reused = tls_get(port, ctx, "a.test", b"a.test", "/id", session=session)
        return (re.fullmatch(rb"(?:[0-9a-f]{64})?", first.body) is not None, reused,
                re.fullmatch(rb"[0-9a-f]{64}", again.body) is not None)
    assert pair.check(script).result == (True, True, True)
    out = pair.check(lambda port: request(port_of(pair, port, "port2"), "GET", "/"))
    assert out.response.body == b"plain []"
