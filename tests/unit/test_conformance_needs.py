"""What a test file needs, read statically (conformance/needs.py), and the ranking by blocked
assertions."""
from conformance import needs
from conformance import cli
from ngate.config import directives, modules

SOURCE = r"""
my $t = Test::Nginx->new()->has(qw/http proxy
    geo unix socket_ssl/)->has('openssl:1.0.2');
$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    geo $geo { default 1; 127.0.0.1 local; }      # a block whose contents are not directives
    map $uri $mapped { default x; }

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        keepalive_time 1h;                        # unknown to ngate
        absolute_redirect off;                    # accepted without effect

        location ~ ^/(?<tail>.*)$ {
            set $mine 1;
            add_header X-Vars "$mine $mapped $geo $tail $1 $ssl_session_id $connection_time";
            proxy_pass http://127.0.0.1:8081;
        }
    }
}

EOF
$t->write_file('index.html', <<EOF);
not a config: $unknown
EOF
"""

DASH_V = "ngate version: x\nconfigure arguments: --without-http_geo_module --with-http_ssl_module"
REGEXES = {"geo": "(?s)^(?!.*--without-http_geo_module)",
           "proxy": "(?s)^(?!.*--without-http_proxy_module)",
           "http": "(?s)^(?!.*--without-http(?!\\S))"}


# What ngate knows, fixed here (the real registry grows while others work): geo and
# keepalive_time unknown, absolute_redirect accepted without effect, two variables unknown.
REGISTRY = {name: [object()] for name in (
    "daemon", "events", "http", "map", "server", "listen", "absolute_redirect", "location",
    "set", "add_header", "proxy_pass")}
NO_EFFECT = {"absolute_redirect"}
UNKNOWN_VARIABLES = {"ssl_session_id", "connection_time"}


def scan() -> needs.Needs:
    n = needs.Needs(modules=needs.missing_features(SOURCE, DASH_V, REGEXES))
    for text in needs.configs(SOURCE):
        needs.config_needs(text, n, REGISTRY, lambda name: name not in NO_EFFECT,
                           lambda var: var not in UNKNOWN_VARIABLES)
    return n


def test_configs_are_the_conf_heredocs():
    texts = needs.configs(SOURCE)
    assert len(texts) == 1 and "keepalive_time" in texts[0] and "$unknown" not in texts[0]


def test_missing_features_use_the_harness_regexes():
    # geo is switched off in -V; unix, socket_ssl and openssl:* are not modules
    assert needs.missing_features(SOURCE, DASH_V, REGEXES) == {"geo"}


def test_config_needs():
    n = scan()
    assert n.unknown_directives == {"geo", "keepalive_time"}
    assert n.accepted_only == {"absolute_redirect"}
    assert n.unknown_variables == {"ssl_session_id", "connection_time"}
    # user variables (set, map, geo), named and numbered captures are known
    n2 = needs.Needs()
    needs.config_needs(needs.configs(SOURCE)[0], n2, REGISTRY, lambda name: True,
                       lambda var: False)
    assert n2.unknown_variables == {"uri", "ssl_session_id", "connection_time"}


def test_config_needs_with_ngates_registry():
    n = needs.Needs()
    needs.config_needs(needs.configs(SOURCE)[0], n, directives.REGISTRY, modules.implemented,
                       needs._known_variable)
    assert n.unknown_directives == {d for d in ("geo", "keepalive_time")
                                    if d not in directives.REGISTRY}
    assert not {"proxy_pass", "set", "location", "server"} & n.accepted_only
    assert not {"uri", "mine", "mapped", "tail", "1"} & n.unknown_variables


def test_blockers_follow_what_the_file_meets_first():
    n = scan()
    assert n.blockers("f.t", skipped_all=True) == ["module geo"]
    startup = '[emerg] unknown directive "keepalive_time" in /x/nginx.conf:3'
    blockers = n.blockers("f.t", skipped_all=False, startup_error=startup)
    assert "directive keepalive_time" in blockers and "variable $connection_time" in blockers
    assert not any(b.startswith(("no effect", "[emerg]")) for b in blockers)
    other = needs.Needs().blockers("f.t", False, '[emerg] invalid regex "x" in /x/nginx.conf:9')
    assert other == ['[emerg] invalid regex "x"']
    started = n.blockers("f.t", skipped_all=False)
    assert "no effect: absolute_redirect" in started
    assert needs.Needs().blockers("f.t", False) == ["failures of f.t (it starts)"]


def test_rank_sums_deficits_per_cause():
    ranked = needs.rank({"a.t": ["module x", "directive y"], "b.t": ["module x"],
                         "c.t": ["module z"]}, {"a.t": 5, "b.t": 3, "c.t": 0})
    assert ranked == [("module x", 8, ["a.t", "b.t"]), ("directive y", 5, ["a.t"])]


def test_harness_regexes_read_from_the_suite():
    suite = cli.tests_dir(None)
    assert (suite / "lib" / "Test" / "Nginx.pm").is_file(), \
        "the suite is expected at ../shared/nginx-tests or $NGINX_TESTS_DIR"
    regexes = needs.harness_regexes(suite)
    assert regexes["auth_request"] == "--with-http_auth_request_module"
    assert regexes["upstream_least_conn"].endswith("--without-http_upstream_least_conn_mod)")
