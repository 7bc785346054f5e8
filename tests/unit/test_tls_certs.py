"""server/tls_certs.py: per-handshake certificate values and the bounded cache of their contexts."""
from __future__ import annotations

import os

import pytest
import trustme

from ngate.config.model import TlsServerConf
from ngate.errors import ConfigError
from ngate.routing.variables import compile_template
from ngate.server.tls_certs import ContextCache, render_pairs


class _Tls:
    ngate_name = "b.test"


class _Conn:
    tls = _Tls()


class _Request:
    conn = _Conn()


@pytest.fixture
def certs(tmp_path):
    ca = trustme.CA()
    for name in ("a.test", "b.test", "c.test"):
        cert = ca.issue_cert(name)
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.crt"))
        cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
    return tmp_path


def dynamic_conf(directory, cert="$ssl_server_name.crt", key="$ssl_server_name.key"):
    return TlsServerConf(certificates=((compile_template(cert), compile_template(key)),),
                         dynamic=True, conf_dir=str(directory))


def test_values_resolve_against_the_config_directory(certs):
    conf = dynamic_conf(certs, key="/abs/$ssl_server_name.key")
    assert render_pairs(conf, _Request()) == ((str(certs / "b.test.crt"), "/abs/b.test.key"),)
    data = TlsServerConf(certificates=((compile_template("data:$ssl_server_name"), "k"),),
                         dynamic=True, conf_dir=str(certs))
    assert render_pairs(data, _Request()) == (("data:b.test", str(certs / "k")),)


def test_contexts_are_cached_bounded_and_reread_when_a_file_changes(certs):
    conf = dynamic_conf(certs)
    cache = ContextCache(size=2)
    pair = {n: ((str(certs / f"{n}.crt"), str(certs / f"{n}.key")),)
            for n in ("a.test", "b.test", "c.test")}
    first = cache.context(conf, pair["a.test"])
    assert cache.context(conf, pair["a.test"]) is first
    cache.context(conf, pair["b.test"])
    cache.context(conf, pair["c.test"])
    assert len(cache.entries) == 2
    assert cache.context(conf, pair["a.test"]) is not first     # dropped as least recent
    again = cache.context(conf, pair["a.test"])
    for ext in ("crt", "key"):       # rewritten in place (same inode), a second later
        path = certs / f"a.test.{ext}"
        mtime = path.stat().st_mtime_ns
        path.write_bytes((certs / f"b.test.{ext}").read_bytes())
        os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert cache.context(conf, pair["a.test"]) is not again


def test_a_missing_file_is_nginx_error_and_not_cached(certs):
    conf = dynamic_conf(certs)
    cache = ContextCache()
    missing = str(certs / "nx.crt")
    with pytest.raises(ConfigError) as err:
        cache.context(conf, ((missing, missing),))
    assert err.value.message.startswith(f'cannot load certificate "{missing}": BIO_new_file() '
                                        "failed (SSL: error:80000002:system library::No such")
    assert not cache.entries
