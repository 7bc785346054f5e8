"""find_location: nginx's location search (exact, longest prefix, ^~, regexes, nesting)."""
import re

import pytest

from ngate.config.model import (FastCGIConf, LocConf, Location, ProxyConf, ProxyPass, Server,
                                ServerNames, Upstream, UpstreamServer)
from ngate.routing.locations import (build_matcher, find_location, needs_slash_redirect,
                                     slash_redirect_target)

PROXY = LocConf(proxy=ProxyConf(pass_=ProxyPass(
    scheme="http",
    upstream=Upstream("127.0.0.1:9", (UpstreamServer("127.0.0.1", 9),), implicit=True),
    host_header="127.0.0.1:9", uri=None)))


def loc(modifier: str, pattern: str, *nested: Location, conf: LocConf = LocConf()) -> Location:
    regex = None
    if modifier in ("~", "~*"):
        regex = re.compile(pattern, re.I if modifier == "~*" else 0)
    return Location(modifier, pattern, regex, conf, tuple(nested))


def server(*locations: Location, names: ServerNames = ServerNames()) -> Server:
    return Server(listens=(), names=names, conf=LocConf(), locations=locations,
                  named_locations={l.pattern: l for l in locations if l.modifier == "@"},
                  matcher=build_matcher(locations))


# name -> location; the server below uses them in this (file) order
L = {
    "=/": loc("=", "/"),
    "/": loc("", "/"),
    "/wss": loc("", "/wss"),
    "/docs/": loc("", "/docs/",
                  loc("", "/docs/api/"),
                  loc("~", r"\.pdf$")),
    "^~/static/": loc("^~", "/static/", loc("~", r"\.css$")),
    "=/exact": loc("=", "/exact"),
    "/app/": loc("", "/app/", conf=PROXY),
    "=/only/": loc("=", "/only/", conf=PROXY),
    "/plain/": loc("", "/plain/"),
    "~php": loc("~", r".php$"),
    "~*img": loc("~*", r"\.(JPG|png)$"),
    "~user": loc("~", r"^/user/(\d+)/(\w+)(/x)?"),
    "~g": loc("~", r"^/g/(\w+)", loc("~", r"\.txt$"), loc("~", r"^/g/\w+/(\d+)")),
    "@fallback": loc("@", "@fallback"),
}
NAMES = {id(v): k for k, v in L.items()}
SERVER = server(*L.values())

# the nested ones, by a path of names
NESTED = {
    "/docs/api/": L["/docs/"].locations[0],
    "/docs/~pdf": L["/docs/"].locations[1],
    "/static/~css": L["^~/static/"].locations[0],
    "~g/~txt": L["~g"].locations[0],
    "~g/~num": L["~g"].locations[1],
}
NAMES.update({id(v): k for k, v in NESTED.items()})


@pytest.mark.parametrize("uri, name, captures", [
    ("/", "=/", ()),                                   # "=" wins over the "/" prefix
    ("/index.html", "/", ()),
    ("/wss", "/wss", ()),
    ("/wssfoo", "/wss", ()),                           # a prefix without slash matches more
    ("/ws", "/", ()),
    ("/WSS", "/", ()),                                 # prefixes are case-sensitive
    ("/xphp", "~php", ("xphp",)),                    # unescaped dot matches any character
    ("/a.php", "~php", (".php",)),
    ("/a.PHP", "/", ()),
    ("/static/a.php", "^~/static/", ()),               # ^~ stops the outer regexes
    ("/static/a.css", "/static/~css", (".css",)),             # ... but not its own nested regexes
    ("/docs/x", "/docs/", ()),
    ("/docs/a.pdf", "/docs/~pdf", (".pdf",)),                 # nested regex before outer regexes
    ("/docs/a.php", "~php", (".php",)),                     # nested no match: outer regexes next
    ("/docs/api/x", "/docs/api/", ()),
    ("/docs/api/x.pdf", "/docs/~pdf", (".pdf",)),    # /docs/ regexes after its nested prefix
    ("/docs/api/x.php", "~php", (".php",)),
    ("/IMG.jpg", "~*img", (".jpg", "jpg")),            # ~* is case-insensitive
    ("/a.PNG", "~*img", (".PNG", "PNG")),
    ("/user/42/profile", "~user", ("/user/42/profile", "42", "profile", "")),
    ("/user/42/profile/x", "~user", ("/user/42/profile/x", "42", "profile", "/x")),
    ("/user/x/profile", "/", ()),
    ("/exact", "=/exact", ()),
    ("/exact/", "/", ()),
    ("/exactly", "/", ()),
    ("/app/", "/app/", ()),
    ("/app/x", "/app/", ()),
    ("/only/", "=/only/", ()),
    ("/only/x", "/", ()),
    ("/fallback", "/", ()),                            # named locations never match
    ("/g/abc", "~g", ("/g/abc", "abc")),
    ("/g/abc.txt", "~g/~txt", (".txt",)),              # a group-less nested regex resets $1
    ("/g/abc/12", "~g/~num", ("/g/abc/12", "12")),     # nested regex with groups: its captures
])
def test_find_location(uri, name, captures):
    found, caps = find_location(SERVER, uri)
    assert NAMES[id(found)] == name
    assert caps == captures
    assert not needs_slash_redirect(found, uri)


@pytest.mark.parametrize("uri, name", [
    ("/app", "/app/"),            # prefix location with proxy_pass
    ("/only", "=/only/"),         # exact location with proxy_pass
])
def test_auto_redirect(uri, name):
    found, caps = find_location(SERVER, uri)
    assert NAMES[id(found)] == name and caps == ()
    assert needs_slash_redirect(found, uri)
    assert slash_redirect_target(found, None) == name.lstrip("=")
    assert slash_redirect_target(found, "a=1") == name.lstrip("=") + "?a=1"


def test_no_auto_redirect_without_a_proxy_handler():
    found, _ = find_location(SERVER, "/plain")
    assert NAMES[id(found)] == "/"
    assert not needs_slash_redirect(found, "/plain")


def test_auto_redirect_is_not_taken_over_a_prefix_equal_to_the_uri():
    srv = server(loc("", "/app"), loc("", "/app/", conf=PROXY))
    found, _ = find_location(srv, "/app")
    assert found.pattern == "/app" and not needs_slash_redirect(found, "/app")


def test_auto_redirect_ends_the_search_before_regexes():
    srv = server(loc("", "/api/", conf=PROXY), loc("~", "api"))
    found, _ = find_location(srv, "/api")
    assert found.pattern == "/api/" and needs_slash_redirect(found, "/api")


def test_auto_redirect_in_a_nested_level():
    inner = loc("", "/a/b/", conf=PROXY)
    srv = server(loc("", "/a/", inner))
    found, _ = find_location(srv, "/a/b")
    assert found is inner and needs_slash_redirect(found, "/a/b")


def test_nothing_matches():
    srv = server(loc("", "/api/"), loc("~", r"\.php$"), loc("@", "@x"))
    assert find_location(srv, "/other") == (None, ())


def test_regexes_are_tried_in_file_order():
    first, second = loc("~", "a"), loc("~", "ab")
    srv = server(first, second)
    assert find_location(srv, "/ab")[0] is first


def test_longest_prefix_wins_whatever_the_order():
    short, long_ = loc("", "/a"), loc("", "/a/b/c")
    srv = server(long_, short, loc("", "/a/b"))
    assert find_location(srv, "/a/b/c/d")[0] is long_
    assert find_location(srv, "/a/x")[0] is short


def test_exact_and_prefix_with_the_same_name():
    exact, prefix = loc("=", "/x"), loc("", "/x")
    srv = server(prefix, exact)
    assert find_location(srv, "/x")[0] is exact
    assert find_location(srv, "/x/y")[0] is prefix


def test_nested_prefix_with_caret_tilde_skips_nested_regexes_only():
    inner = loc("^~", "/a/b/")
    nested_rx = loc("~", r"\.js$")
    outer_rx = loc("~", r"\.css$")
    srv = server(loc("", "/a/", inner, nested_rx), outer_rx)
    assert find_location(srv, "/a/b/x.js")[0] is inner
    assert find_location(srv, "/a/b/x.css")[0] is outer_rx    # the outer "/a/" is not ^~


def test_result_is_cached_and_stable():
    srv = server(loc("~", r"^/(\w+)"))
    first = find_location(srv, "/abc")
    assert find_location(srv, "/abc") == first == (srv.locations[0], ("/abc", "abc"))


FASTCGI = LocConf(fastcgi=FastCGIConf(pass_=PROXY.proxy.pass_.upstream))


@pytest.mark.parametrize("modifier, pattern, conf", [
    (m, p, c) for m in ("", "=", "^~", "~", "~*", "@")
    for p in ("/", "/a", "/a/", "/a/b/", "/x(?P<n>y)/", r"^/(?P<id>\d+)/")
    for c in (LocConf(), PROXY, FASTCGI)
])
def test_location_flags_as_their_definitions(modifier, pattern, conf):
    """Location.named_groups and auto_redirect (made when the location is) are what
    find_location_phase and needs_slash_redirect tested per request before: the regex's named
    groups; a prefix, ^~ or = name longer than "/" ending in "/" with proxy_pass or
    fastcgi_pass."""
    lc = loc(modifier, pattern, conf=conf)
    assert lc.named_groups == (lc.regex is not None and bool(lc.regex.groupindex))
    assert lc.auto_redirect == (
        modifier in ("", "=", "^~") and pattern.endswith("/") and len(pattern) > 1
        and (conf.proxy.pass_ is not None or conf.fastcgi.pass_ is not None))
    for uri in ("/", "/a", "/a/", "/a/b", "/x(?P<n>y)", "/b"):
        assert needs_slash_redirect(lc, uri) == (
            lc.auto_redirect and pattern == uri + "/")
