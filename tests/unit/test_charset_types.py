"""charset_types as nginx's ngx_http_test_content_type (the shared filters.content_type_in):
a proxied type up to its charset parameter, else the whole value (tests/differential/
test_content_type_params.py), compared in lower case; `*` takes any type. Both of the charset
module's paths (announce only, and recode with a charset_map) decide alike."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ngate.config.model import CharsetConf
from ngate.http1.charset import DEFAULT_TYPES, RecodeConf, content_type, decide

TYPES = DEFAULT_TYPES | {b"text/css"}


def announce(ctype, types):
    conf = SimpleNamespace(charset=CharsetConf(charset=b"utf-8", types=types))
    return content_type(conf, 200, ctype)


def recode(ctype, types):
    rc = RecodeConf(b"utf-8", None, False, {}, frozenset(), types)
    return decide(rc, 200, ctype, None, False)[0]


@pytest.mark.parametrize("check", [announce, recode])
@pytest.mark.parametrize("ctype, types, added", [
    (b"text/html", TYPES, True),
    (b"Text/CSS", TYPES, True),              # nginx lower-cases the type for the hash
    (b"text/css ; x=1", TYPES, False),       # no charset parameter: the whole value
    (b"text/css;x=1", TYPES | {b"text/css;x=1"}, True),
    (b"image/png", TYPES, False),
    (b"image/png", None, True),              # charset_types *
])
def test_charset_types(check, ctype, types, added):
    assert check(ctype, types) == (ctype + b"; charset=utf-8" if added else ctype)


@pytest.mark.parametrize("check", [announce, recode])
def test_own_charset_is_kept(check):
    assert check(b"text/html; charset=koi8-r", TYPES) == b"text/html; charset=koi8-r"
