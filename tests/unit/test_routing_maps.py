"""evaluate_map: exact keys, hostnames wildcards, regexes with captures, default."""
from __future__ import annotations

import re

import pytest

from ngate.config.model import MapBlock
from ngate.http.context import RequestContext
from ngate.routing.maps import evaluate_map
from ngate.routing.variables import compile_template


def t(text: str):
    return compile_template(text, user_vars=frozenset({"user"}))


def ctx_with(value: str | None) -> RequestContext:
    hdr = {} if value is None else {b"x-in": value.encode("latin-1")}
    return RequestContext(None, "GET", "/", "1.1", list(hdr.items()), hdr)


UPGRADE = MapBlock(source=t("$http_x_in"), variable="connection_upgrade",
                   default=t("upgrade"), exact={"": t("close")})

GENERAL = MapBlock(
    source=t("$http_x_in"), variable="out", default=t("dflt"),
    exact={"exact": t("exact-hit"), "api.test": t("exact-host")},
    regexes=((re.compile(r"^api\.(\w+)"), t("rx1-$1")),
             (re.compile(r"(?i)^API"), t("rx2-upper")),
             (re.compile(r"^(?P<user>\w+)@"), t("user-$user-$1")),
             (re.compile(r"pre"), t("no-groups"))),
)

HOSTS = MapBlock(
    source=t("$http_x_in"), variable="site", default=None, hostnames=True,
    exact={"example.com": t("exact"), "example.net": t("dot-bare")},
    wild_front=((".a.example.com", t("front-long")), (".example.com", t("front")),
                (".example.net", t("dot"))),
    wild_back=(("www.example.co.", t("back-long")), ("www.example.", t("back"))),
    regexes=((re.compile(r"^mail\."), t("rx")),),
)


@pytest.mark.parametrize("m, value, expected", [
    (UPGRADE, "websocket", "upgrade"),
    (UPGRADE, "", "close"),                      # '' matches an empty value ...
    (UPGRADE, None, "close"),                    # ... and an absent one
    (GENERAL, "exact", "exact-hit"),
    (GENERAL, "EXACT", "exact-hit"),             # keys are case-insensitive
    (GENERAL, "api.test", "exact-host"),         # exact before regexes
    (GENERAL, "api.prod", "rx1-prod"),           # captures in the value
    (GENERAL, "API.x", "rx2-upper"),             # regexes match the value as is, in order
    (GENERAL, "bob@x", "user-bob-bob"),          # named captures as variables
    (GENERAL, "prefix", "no-groups"),
    (GENERAL, "other", "dflt"),
    (GENERAL, "", "dflt"),                       # regexes are not tried on an empty value
    (HOSTS, "example.com", "exact"),
    (HOSTS, "Example.COM.", "exact"),            # trailing dot dropped with hostnames
    (HOSTS, "x.example.com", "front"),
    (HOSTS, "x.a.example.com", "front-long"),    # the longest leading wildcard
    (HOSTS, "example.net", "dot-bare"),
    (HOSTS, "x.example.net", "dot"),
    (HOSTS, "www.example.org", "back"),
    (HOSTS, "www.example.co.uk", "back-long"),
    (HOSTS, "www.example.com", "front"),         # leading wildcards before trailing ones
    (HOSTS, "mail.other.org", "rx"),
    (HOSTS, "nothing.org", ""),                  # no default: empty
])
def test_evaluate_map(m, value, expected):
    assert evaluate_map(m, ctx_with(value)) == expected


def test_regex_captures_are_restored_after_the_value_renders():
    ctx = ctx_with("api.prod")
    ctx.captures = ("/loc/7", "7")
    assert evaluate_map(GENERAL, ctx) == "rx1-prod"
    assert ctx.captures == ("/loc/7", "7")


def test_captures_of_the_location_are_visible_in_a_plain_value():
    m = MapBlock(source=t("$http_x_in"), variable="v", default=t("loc-$1"))
    ctx = ctx_with("zzz")
    ctx.captures = ("/loc/7", "7")
    assert evaluate_map(m, ctx) == "loc-7"


def test_ascii_only_case_folding():
    m = MapBlock(source=t("$http_x_in"), variable="v", exact={"\xc9t\xe9": t("hit")},
                 default=t("miss"))
    assert evaluate_map(m, ctx_with("\xc9T\xe9")) == "hit"
    assert evaluate_map(m, ctx_with("\xe9t\xe9")) == "miss"
