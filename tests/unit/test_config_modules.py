"""`ngate -V`'s configure arguments follow the directive registry (ngate/config/modules.py)."""
import re

from ngate import cli
from ngate.config import directives, handlers, modules
from ngate.config.directives import Directive


def fake_registry(**implemented: bool) -> dict:
    """Every directive the table names, accepted only, except those given True."""
    names = {n for _m, _d, ns in modules.MODULES for n in ns}
    real = lambda c, lv, st: None  # noqa: E731
    return {n: [Directive(n, frozenset({"http"}), (0, None),
                          real if implemented.get(n) else handlers.no_effect())] for n in names}


def test_nothing_implemented_lists_every_default_module_as_without():
    args = modules.configure_arguments(fake_registry())
    defaults = [m for m, default, _ns in modules.MODULES if default]
    assert args == [f"--without-{m}" for m in defaults]


def test_module_appears_when_all_its_directives_are_real():
    reg = fake_registry(auth_basic=True)
    assert "--without-http_auth_basic_module" in modules.configure_arguments(reg)
    reg = fake_registry(auth_basic=True, auth_basic_user_file=True,
                        set_real_ip_from=True, real_ip_header=True)
    args = modules.configure_arguments(reg)
    assert "--without-http_auth_basic_module" not in args
    assert "--with-http_realip_module" in args


def test_refusing_handler_does_not_count():
    def refuse(c, lv, st):
        raise AssertionError
    refuse.not_implemented = True
    reg = fake_registry()
    reg["geo"] = [Directive("geo", frozenset({"http"}), (0, None), refuse)]
    assert "--without-http_geo_module" in modules.configure_arguments(reg)


def test_table_names_directives_consistently_with_the_registry():
    """A directive the table names and ngate implements is registered; `-V` today says what
    ngate has: ssl, proxy, fastcgi, rewrite, map, access, upstream balancers."""
    args = modules.configure_arguments()
    for module in ("http_proxy_module", "http_fastcgi_module", "http_rewrite_module",
                   "http_map_module", "http_access_module", "http_upstream_hash_module",
                   "http_upstream_keepalive_module", "http_autoindex_module"):
        assert f"--without-{module}" not in args
    assert "--with-http_ssl_module" in args
    for module, default, names in modules.MODULES:
        listed = (f"--without-{module}" if default else f"--with-{module}") in args
        assert listed == (default != all(modules.implemented(n) for n in names)), module
    for name in ("proxy_pass", "fastcgi_pass", "ssl_certificate", "map", "allow"):
        assert name in directives.REGISTRY


def test_dash_V_prints_them_as_the_harness_reads_them(capsys):
    assert cli.main(["-V"]) == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("configure arguments:"))
    assert line.split()[2:] == modules.configure_arguments()
    assert re.search(r"with openssl [0-9.]+", err, re.I)     # has('openssl:1.0.2')
    assert "TLS SNI support enabled" in err
    # Test::Nginx has_module(): a feature it has no regex for matches anywhere in -V's output,
    # so such a name appears exactly when its module is implemented
    for feature in ("addition", "gunzip", "dav", "mp4", "slice", "stub_status", "http_v2"):
        module = f"http_{feature}_module".replace("http_http_", "http_")
        assert (feature in err) == modules.module_implemented(modules.DIRECTIVES[module]), feature
    assert "--with-http_v2_module" in line.split()        # ngate/http2/
