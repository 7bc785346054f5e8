"""ServerSelector (nginx's server_name order) and normalize_host (ngx_http_validate_host)."""
from __future__ import annotations

import re

import pytest

from ngate.config.model import LocConf, Server, ServerNames
from ngate.routing.servers import ServerSelector, normalize_host


def names(*written: str) -> ServerNames:
    """ServerNames as the config compiler stores them (".x" also puts "x" in exact)."""
    exact, front, back, regexes = [], [], [], []
    for n in written:
        if n.startswith("~"):
            regexes.append(re.compile(n[1:]))
        elif n.startswith("*."):
            front.append(n[1:])
        elif n.startswith("."):
            front.append(n)
            exact.append(n[1:])
        elif n.endswith(".*"):
            back.append(n[:-1])
        else:
            exact.append(n.lower())
    return ServerNames(frozenset(exact), tuple(front), tuple(back), tuple(regexes),
                       first=written[0] if written else "")


def srv(*written: str) -> Server:
    return Server(listens=(), names=names(*written), conf=LocConf(), locations=(),
                  named_locations={})


WRITTEN = {   # server -> its server_name arguments, config order
    "default": ("default.test",),
    "exact": ("www.example.com", "example.org"),
    "front": ("*.example.com",),
    "front-longer": ("*.api.example.com",),
    "dot": (".example.net",),
    "back": ("www.example.*",),
    "back-longer": ("www.example.co.*",),
    "regex1": (r"~^(?P<user>\w+)\.users\.test$",),
    "regex2": (r"~\.test$",),
    "dup-exact": ("www.example.com",),        # a conflicting name: the first server keeps it
}
SERVERS = {name: srv(*written) for name, written in WRITTEN.items()}
DEFAULT = SERVERS["default"]
SELECTOR = ServerSelector(DEFAULT, tuple(SERVERS.values()))
BY_ID = {id(v): k for k, v in SERVERS.items()}


@pytest.mark.parametrize("host, expected", [
    ("www.example.com", "exact"),                 # exact beats *.example.com and www.example.*
    ("example.org", "exact"),
    ("a.example.com", "front"),
    ("a.b.example.com", "front"),
    ("example.com", "default"),                   # "*.example.com" needs one more label
    ("x.api.example.com", "front-longer"),        # the longest leading wildcard
    ("api.example.com", "front"),
    ("example.net", "dot"),                       # ".example.net" matches the bare name too
    ("a.example.net", "dot"),
    ("www.example.org", "back"),                  # leading wildcards and exact first, then trailing
    ("www.example.co.uk", "back-longer"),         # the longest trailing wildcard
    ("www.example", "default"),
    ("bob.users.test", "regex1"),                 # regexes in config order
    ("other.test", "regex2"),
    ("default.test", "default"),
    ("unknown.invalid", "default"),
    ("", "default"),
    (None, "default"),
])
def test_select(host, expected):
    assert BY_ID[id(SELECTOR.select(host))] == expected
    assert BY_ID[id(SELECTOR.select(host))] == expected      # again, from the cache


def test_front_wildcard_beats_back_wildcard():
    front, back = srv("*.example.com"), srv("www.example.*")
    sel = ServerSelector(DEFAULT, (DEFAULT, back, front))
    assert sel.select("www.example.com") is front


def test_regex_is_searched_not_anchored():
    rx = srv(r"~example")
    sel = ServerSelector(DEFAULT, (DEFAULT, rx))
    assert sel.select("www.example.com") is rx


def test_cache_is_bounded():
    sel = ServerSelector(DEFAULT, (DEFAULT,))
    for i in range(3000):
        sel.select(f"h{i}.test")
    assert len(sel.cache) <= 1024


@pytest.mark.parametrize("raw, host", [
    (b"example.com", "example.com"),
    (b"Example.COM", "example.com"),
    (b"example.com:8080", "example.com"),
    (b"example.com.", "example.com"),
    (b"Example.COM.:80", "example.com"),
    (b"[::1]:8080", "[::1]"),
    (b"[::1]", "[::1]"),
    (b"[::1", "[::1"),
    (b"127.0.0.1:80", "127.0.0.1"),
    (b".x.com", ".x.com"),
    (b"a_b", "a_b"),
    (b"x:", "x"),
    (b"A:b:c", "a"),
    (b"caf\xc3\xa9.test", "caf\xc3\xa9.test"),
    (b"\xc3\x89.test", "\xc3\x89.test"),          # only ASCII letters are lower-cased
])
def test_normalize_host(raw, host):
    assert normalize_host(raw) == host


@pytest.mark.parametrize("raw", [
    b"", b":80", b".", b"a..b", b"x.com:8..0", b"a b", b"a\tb", b"a\x7fb", b"a\x00b",
    b"a/b", b"..", b"a\x01",
])
def test_normalize_host_rejects(raw):
    assert normalize_host(raw) is None
