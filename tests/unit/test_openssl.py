"""The ctypes layer over libssl (ngate/server/openssl.py): it must find CPython's own SSL_CTX and
SSL objects here (else client verification silently degrades), and each call must act on them."""
from __future__ import annotations

import ssl

import pytest
import trustme

from ngate.server import openssl


def test_available_on_this_python():
    assert openssl.AVAILABLE


def test_verify_error_text():
    assert openssl.verify_error(20) == "unable to get local issuer certificate"
    assert openssl.verify_error(22) == "certificate chain too long"


@pytest.mark.parametrize("groups, ok", [
    ("prime256v1", True), ("X25519:prime256v1:secp384r1", True), ("prime256v1:nope", False)])
def test_set_groups(groups, ok):
    assert openssl.set_groups(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), groups) is ok


def _handshake(server_ctx, client_ctx, name="a.test"):
    """A TLS handshake between two memory BIO pairs; returns the server's SSLObject."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for obj in (client, server):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    return server


@pytest.fixture(scope="module")
def pki():
    ca, other = trustme.CA(), trustme.CA()
    return ca, other, ca.issue_cert("a.test")


def _server(pki, depth=1):
    ca, _other, cert = pki
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    openssl.verify_per_request(ctx, depth)
    return ctx


def _client(pki, issuer):
    ca = pki[0]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    issuer.issue_cert("client@test").configure_cert(ctx)
    return ctx


def test_unknown_client_ca_completes_handshake_with_the_error_kept(pki):
    server = _handshake(_server(pki), _client(pki, pki[1]))
    assert server.getpeercert(binary_form=True)
    assert openssl.verify_result(server) in openssl.OPTIONAL_NO_CA_ERRORS


def test_known_client_ca_verifies(pki):
    server = _handshake(_server(pki), _client(pki, pki[0]))
    assert openssl.verify_result(server) == 0


def test_verify_depth_limits_the_chain(pki):
    deep = pki[0].create_child_ca().create_child_ca()
    assert openssl.verify_result(_handshake(_server(pki, depth=1), _client(pki, deep))) != 0
    assert openssl.verify_result(_handshake(_server(pki, depth=2), _client(pki, deep))) == 0
