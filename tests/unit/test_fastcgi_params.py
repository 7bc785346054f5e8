"""fastcgi/params.py: a location's PARAMS content compiled once, against the pair encoding of
records.py applied to every fastcgi_param and header one by one."""
import pytest

from ngate.fastcgi import records as fcgi
from ngate.fastcgi.params import STATIC, TEMPLATE, ParamsPlan
from ngate.routing.variables import compile_template


class Ctx:
    """What the templates below read: $arg_* and $http_* come from these fields."""

    def __init__(self, args: str, headers: list) -> None:
        self.args = args
        self.headers = headers
        self.hdr = {k.lower(): v for k, v in headers}
        self.arg_cache = None
        self.vars = None
        self.conf = None


def _plan(pairs, skip=frozenset(), headers=True):
    items = []
    for name, text, if_not_empty in pairs:
        template = compile_template(text)
        if template.static:
            if text or not if_not_empty:
                items.append((STATIC, fcgi.pair(name, text.encode("latin-1"))))
        else:
            items.append((TEMPLATE, name, template, if_not_empty))
    return ParamsPlan(items, skip, headers)


def _expected(pairs, ctx, skip=frozenset(), headers=True):
    out = []
    for name, text, if_not_empty in pairs:
        value = compile_template(text).render(ctx)
        if value or not if_not_empty:
            out.append((name, value.encode("latin-1", "replace")))
    if headers:
        for name, value in ctx.headers:
            low = name.lower().replace(b"-", b"_")
            if low not in skip:
                out.append((b"HTTP_" + low.upper(), value))
    return out


PAIRS = [(b"GATEWAY_INTERFACE", "CGI/1.1", False), (b"REDIRECT_STATUS", "200", False),
         (b"QUERY_STRING", "$args", False), (b"EMPTY", "", False), (b"SKIPPED", "", True),
         (b"A_" + b"N" * 130, "$arg_a", False),            # a name of 4 length bytes
         (b"TWO", "<$arg_a|$arg_b>", False), (b"S", "s", False), (b"OPT", "$arg_b", True),
         (b"PCT", "100%", False), (b"X", "x", False)]


@pytest.mark.parametrize("args", ["a=1&b=2", "a=" + "v" * 200, "b=", "", "a=%C3%A9&b=\u0100"])
@pytest.mark.parametrize("headers", [True, False])
def test_build_is_the_pairs_one_by_one(args, headers):
    ctx = Ctx(args, [(b"Host", b"h"), (b"X-Long-Header", b"w" * 300), (b"User-Agent", b"ua"),
                     (b"X-" + b"L" * 140, b"1")])
    skip = frozenset({b"host"})
    got = fcgi.decode_params(_plan(PAIRS, skip, headers).build(ctx))
    assert got == _expected(PAIRS, ctx, skip, headers)
    if args.startswith("a=v"):
        assert (b"A_" + b"N" * 130, b"v" * 200) in got      # 4 length bytes each
    if args == "a=%C3%A9&b=\u0100":                       # not latin-1: "?", as before
        assert (b"OPT", b"?") in got


def test_static_pairs_are_encoded_once():
    plan = _plan([(b"A", "1", False), (b"B", "2", False), (b"C", "$args", False),
                  (b"D", "3", False)])
    assert [p[1:] for p in plan.pieces] == [("\x01\x01A1\x01\x01B2\x01", "C",
                                             "\x01\x01A1\x01\x01B2\x01\x00C")]
    assert plan.tail == "\x01\x01D3"


FOLD_CONF = """
server { listen 8001;
    location /static/ { root /srv/www; fastcgi_pass 127.0.0.1:9000;
        fastcgi_param SOFTWARE nginx/$nginx_version; fastcgi_param ROOT $document_root;
        fastcgi_param FILE $document_root$uri; fastcgi_param BOTH $document_root:$nginx_version; }
    location /alias/ { alias /srv/alias/; fastcgi_pass 127.0.0.1:9000;
        fastcgi_param ROOT $document_root; fastcgi_param FILE $document_root$uri; }
    location /var/ { root /srv/$host; fastcgi_pass 127.0.0.1:9000;
        fastcgi_param ROOT $document_root; fastcgi_param FILE $document_root$uri; }
}"""


class LocCtx:
    """A request in a location: what $document_root, $uri and $host read."""

    def __init__(self, conf, uri: str) -> None:
        self.conf = conf
        self.uri = uri
        self.host = "h.test"
        self.headers = []
        self.hdr = {}


@pytest.mark.parametrize("where", ["/static/", "/alias/", "/var/"])
def test_the_location_own_values_are_folded(tmp_path, where):
    """$nginx_version, and $document_root of a root or alias without variables, are encoded
    with the pairs once; the block is the one the templates render, request by request."""
    from tests.unit._config_helpers import load_http
    cfg = load_http(tmp_path, FOLD_CONF)
    loc = {"/static/": 0, "/alias/": 1, "/var/": 2}[where]
    conf = cfg.servers[0].locations[loc].conf
    from ngate.proxy.fastcgi_proxy import FastCGIPlan
    plan = FastCGIPlan(conf)
    ctx = LocCtx(conf, where + "x.php")
    expected = [(p.name.encode(), p.value.render(ctx).encode()) for p in conf.fastcgi.param]
    assert fcgi.decode_params(plan.params.build(ctx)) == expected
    templated = [p[2] for p in plan.params.pieces]
    if where == "/var/":        # $document_root with variables is read per request
        assert templated == ["ROOT", "FILE"]
    else:
        assert "ROOT" not in templated and "SOFTWARE" not in templated \
            and "BOTH" not in templated and "FILE" in templated


def test_header_pairs_are_kept_per_header_list():
    """The same header list again gives the pairs kept for it; another list its own; the kept
    lists stay bounded."""
    plan = _plan(PAIRS, frozenset({b"host"}))
    lists = [[(b"Host", b"h"), (b"Accept", b"*/*")], [(b"Host", b"h"), (b"Accept", b"a/b")],
             [(b"X-Big", b"v" * 2000)]]
    for _ in range(2):
        for headers in lists:
            ctx = Ctx("a=1", headers)
            got = fcgi.decode_params(plan.build(ctx))
            assert got == _expected(PAIRS, ctx, frozenset({b"host"}))
    assert len(plan.passed) == 2            # the 2000-byte value's list is not kept
    for i in range(200):
        plan.build(Ctx("", [(b"X-N", b"%d" % i)]))
        assert len(plan.passed) <= 64


LOCATED_CONF = """
server { listen 8001;
    location /index/ { root /srv/www; fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param SCRIPT_NAME $fastcgi_script_name; fastcgi_param USER $remote_user;
        fastcgi_param INFO $fastcgi_path_info; }
    location /plain/ { root /srv/www; fastcgi_pass 127.0.0.1:9000;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param SCRIPT_NAME $fastcgi_script_name; fastcgi_param USER $remote_user; }
    location /split/ { root /srv/www; fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php;
        fastcgi_split_path_info ^(.+\\.php)(/.*)$;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param SCRIPT_NAME $fastcgi_script_name; fastcgi_param INFO $fastcgi_path_info; }
}"""


@pytest.mark.parametrize("where", ["/index/", "/plain/", "/split/"])
@pytest.mark.parametrize("made", ["bound", "here"])
def test_located_getters_give_the_registry_values(tmp_path, where, made):
    """The getters made for a location ($fastcgi_script_name without fastcgi_split_path_info,
    $remote_user, `$document_root$fastcgi_script_name`) send what the templates render with
    the registry's getters, in the location and (falling back) for a request in another; the
    plan the location's bound conf carries (made from the conf before http/modules.py's
    bind()) as one made from the bound conf."""
    from tests.unit._config_helpers import load_http
    cfg = load_http(tmp_path, LOCATED_CONF)
    confs = [loc.conf for loc in cfg.servers[0].locations]
    conf = confs[["/index/", "/plain/", "/split/"].index(where)]
    from ngate.proxy.fastcgi_proxy import FastCGIPlan
    plan = conf.upstream_plan if made == "bound" else FastCGIPlan(conf)
    made = [p[0].__name__ for p in plan.params.pieces]
    assert made[:2] == (["prefixed", "_fastcgi_script_name"] if where == "/split/"
                        else ["script_name", "script_name"])
    auths = [None, b"Basic dXNlcjpwYXNz", b"basic  dXNlcjpwYXNz", b"Bearer x", b"Basic !!",
             b"Basic dXNlcg=="]
    for ctx_conf in confs:
        for uri in (where, where + "a.php", where + "a.php/x/y", where + "d/", "/"):
            for auth in auths:
                ctx = LocCtx(ctx_conf, uri)
                if auth is not None:
                    ctx.hdr = {b"authorization": auth}
                expected = [(p.name.encode(), p.value.render(ctx).encode())
                            for p in conf.fastcgi.param]
                assert fcgi.decode_params(plan.params.build(ctx)) == expected, (uri, auth)


def test_located_script_name_reads_the_location(tmp_path, monkeypatch):
    """In its location (the bound conf, as requests see it) the made $fastcgi_script_name
    reads $uri and fastcgi_index itself: the registry's getter (fastcgi_split) is called for
    $fastcgi_path_info only; in another location for each."""
    from tests.unit._config_helpers import load_http
    from ngate.fastcgi import variables as fv
    cfg = load_http(tmp_path, LOCATED_CONF)
    confs = [loc.conf for loc in cfg.servers[0].locations]
    calls = []
    split = fv.fastcgi_split
    monkeypatch.setattr(fv, "fastcgi_split", lambda ctx: calls.append(ctx) or split(ctx))
    plan = confs[0].upstream_plan
    got = dict(fcgi.decode_params(plan.params.build(LocCtx(confs[0], "/index/d/"))))
    assert got[b"SCRIPT_NAME"] == b"/index/d/index.php"
    assert got[b"SCRIPT_FILENAME"] == b"/srv/www/index/d/index.php"
    assert len(calls) == 1      # $fastcgi_path_info's (INFO)
    got = dict(fcgi.decode_params(plan.params.build(LocCtx(confs[2], "/split/a.php/x"))))
    assert got[b"SCRIPT_NAME"] == b"/split/a.php" and len(calls) == 4


class FullCtx:
    """A request as every variable of Debian's fastcgi_params reads it."""

    def __init__(self, conf, uri="/a.php", args="", method="GET", main=None, hdr=(),
                 length=None, version="1.1", scheme="http", server=True, host="h.test",
                 request_uri=None) -> None:
        from types import SimpleNamespace
        self.conf = conf
        self.uri = uri
        self.args = args
        self.method = method
        self.main = main
        self.headers = list(hdr)
        self.hdr = {k.lower(): v for k, v in hdr}
        self.content_length_in = length
        self.http_version = version
        self.conn = SimpleNamespace(scheme=scheme, remote_addr="10.0.0.1", remote_port="5000",
                                    server_addr="127.0.0.1", server_port="8001")
        self.server = SimpleNamespace(names=SimpleNamespace(first="srv.test")) if server \
            else None
        self.host = host
        self.request_uri = request_uri or uri + ("?" + args if args else "")
        self.vars = None
        self.arg_cache = None


def _full_ctxs(conf, where):
    from types import SimpleNamespace
    auths = [(), ((b"Authorization", b"Basic dXNlcjpwYXNz"),),
             ((b"Authorization", b"basic  dXNlcjpwYXNz"),), ((b"Authorization", b"Bearer x"),),
             ((b"Authorization", b"Basic dXNlcg=="),)]
    yield FullCtx(conf, where + "a.php")
    yield FullCtx(conf, where, args="x=1&y=%C3%A9\u0100")
    yield FullCtx(conf, where + "d/", method="HEAD", server=False, host="")
    yield FullCtx(conf, where + "a.php", main=SimpleNamespace(method="POST"), version="1.0")
    yield FullCtx(conf, where + "a.php/x/y", scheme="https", version="2.0")
    yield FullCtx(conf, where + "l" * 200 + ".php", args="v" * 300)
    yield FullCtx(conf, where + "a.php", length=12, hdr=((b"Content-Type", b"text/x\xe9"),))
    yield FullCtx(conf, where + "a.php", length=0,
                  hdr=((b"Content-Length", b"7"), (b"Host", b"h"), (b"X-A", b"1")))
    for auth in auths:
        yield FullCtx(conf, where + "a.php", hdr=auth)


FULL_CONF = """
server { listen 8001; server_name srv.test;
    location /index/ { root /srv/www; fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        include fastcgi_params; fastcgi_param INFO $fastcgi_path_info;
        fastcgi_param TWO <$args|$uri>; fastcgi_param PCT 100%$args if_not_empty; }
    location /plain/ { root /srv/www; fastcgi_pass 127.0.0.1:9000;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        include fastcgi_params; fastcgi_param OPT $remote_user if_not_empty; }
    location /split/ { root /srv/$host; fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php;
        fastcgi_split_path_info ^(.+\\.php)(/.*)$; fastcgi_pass_request_headers off;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        include fastcgi_params; }
    location /set/ { set $args a=b; root /srv/www; fastcgi_pass 127.0.0.1:9000;
        fastcgi_param Q $args; fastcgi_param U x$uri; }
}"""


@pytest.mark.parametrize("where", ["/index/", "/plain/", "/split/", "/set/"])
def test_compiled_build_is_build_pairs(tmp_path, where):
    """ParamsPlan.build (compile_build: the pieces written out, common variables inline) gives
    build_pairs' bytes (the loop over the pieces, the general way), pair by pair, for Debian's
    fastcgi_params and others, for requests in the location and in the others."""
    import shutil
    from tests.unit._config_helpers import load_http
    shutil.copy("/etc/nginx/fastcgi_params", tmp_path)
    cfg = load_http(tmp_path, FULL_CONF)
    confs = [loc.conf for loc in cfg.servers[0].locations]
    plan = confs[["/index/", "/plain/", "/split/", "/set/"].index(where)].upstream_plan.params
    assert plan.build.__name__ == "build"       # the compiled one
    n = 0
    for conf in confs:
        for ctx in _full_ctxs(conf, where):
            pairs = fcgi.decode_params(plan.build_pairs(ctx))
            assert fcgi.decode_params(plan.build(ctx)) == pairs, (ctx.uri, ctx.hdr)
            assert plan.build(ctx) == plan.build_pairs(ctx)
            n += 1
    assert n > 40


def test_inline_values_are_the_getters(tmp_path):
    """Each statement compile_build reads a variable with inline sets what the registry's
    getter returns (the same value, None included), request by request."""
    from ngate.fastcgi import params
    from tests.unit._config_helpers import load_http
    cfg = load_http(tmp_path, LOCATED_CONF)
    confs = [loc.conf for loc in cfg.servers[0].locations]
    table = params._inline_table()
    assert len(table) >= 16
    for get, lines in table.items():
        env = {"_REMOTE_USER": get}
        src = "def inline(ctx):\n" + "".join("    " + line + "\n" for line in lines) \
            + "    return v\n"
        exec(compile(src, "<test>", "exec"), env)
        for conf in confs:
            for ctx in _full_ctxs(conf, "/index/"):
                assert env["inline"](ctx) == get(ctx), (get.__name__, ctx.uri, ctx.hdr)
