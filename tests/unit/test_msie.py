"""http/user_agent.py (nginx's ngx_http_process_user_agent flags) and http/msie.py
(msie_padding's padding, msie_refresh's page and NGX_ESCAPE_REFRESH)."""
from types import SimpleNamespace

import pytest

from ngate.filters.gzip import is_msie6
from ngate.http import msie
from ngate.http.respond import _disabled_for
from ngate.http.user_agent import (CHROME, GECKO, KONQUEROR, MSIE, MSIE6, OPERA, SAFARI,
                                   browser)


@pytest.mark.parametrize("ua,flags", [
    (None, 0), (b"", 0),
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", MSIE | MSIE6),
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", MSIE),
    (b"MSIE 5.5", MSIE | MSIE6), (b"MSIE 4.01", MSIE | MSIE6),
    (b"MSIE 7.0", MSIE), (b"MSIE 10.0", MSIE), (b"MSIE foo", MSIE),
    (b"MSIE 6.", 0),                    # 8 bytes from "MSIE " are needed
    (b"x MSIE 6", 0), (b"MSIE 6.0 Opera", OPERA), (b"Opera/9.80", OPERA),
    (b"Mozilla/5.0 Gecko/20100101 Firefox/1", GECKO), (b"Gecko/1 Chrome/2", GECKO),
    (b"AppleWebKit (KHTML, like Gecko) Chrome/120.0 Safari/537.36", CHROME),
    (b"(Macintosh; Intel Mac OS X 10_15) AppleWebKit Safari/605", SAFARI),
    (b"Safari/605", 0), (b"Mac OS X Safari/1 MSIE 6", SAFARI),   # a short MSIE is none
    (b"Konqueror/4", KONQUEROR), (b"msie 6.0", 0),
])
def test_browser_flags(ua, flags):
    assert browser(ua) == flags
    assert is_msie6(ua or b"") == bool(flags & MSIE6)
    # keepalive_disable reads the same flags (its msie6 case scans for the token first)
    hdr = {} if ua is None else {b"user-agent": ua}
    for method in ("POST", "GET"):
        ctx = SimpleNamespace(hdr=hdr, method=method)
        assert _disabled_for(ctx, frozenset({"msie6"})) == (
            method == "POST" and bool(flags & MSIE6))
        assert _disabled_for(ctx, frozenset({"safari"})) == bool(flags & SAFARI)
        assert _disabled_for(ctx, frozenset({"msie6", "safari"})) == (
            method == "POST" and bool(flags & MSIE6) or bool(flags & SAFARI))


def test_escape_refresh_table():
    """The bytes ngx_escape_uri's refresh table escapes, and only those."""
    escaped = {c for c in range(256) if msie.escape_refresh(bytes([c])) != bytes([c])}
    assert escaped == set(range(0x21)) | set(range(0x7f, 0x100)) | set(b"\"'<>\\^`{|~")
    assert msie.escape_refresh(b"/a b?x=%41&y=}#") == b"/a%20b?x=%41&y=}#"
    assert msie.escape_refresh(b"\xe9\x01") == b"%E9%01"


def _ctx(ua, server_tokens=True, padding=True, refresh=False):
    conf = SimpleNamespace(server_tokens=server_tokens, msie_padding=padding,
                           msie_refresh=refresh)
    return SimpleNamespace(hdr={} if ua is None else {b"user-agent": ua}, conf=conf)


@pytest.mark.parametrize("ua,padded", [(b"MSIE 8.0", True), (b"Chrome/1", True),
                                       (b"Firefox/1", False), (None, False),
                                       (b"MSIE 8.0 Opera", False)])
def test_status_page_padding(ua, padded):
    ctx = _ctx(ua)
    page = msie.status_page(ctx, ctx.conf, 404)
    assert page.endswith(msie.PADDING) == padded
    assert msie.status_page(ctx, ctx.conf, 302).endswith(msie.PADDING) is False   # 3xx: never
    assert msie.status_page(ctx, ctx.conf, 418) is None                           # no page
    off = _ctx(ua, padding=False)
    assert not msie.status_page(off, off.conf, 500).endswith(msie.PADDING)


def test_padding_is_nginx_bytes():
    assert len(msie.PADDING) == 402
    assert msie.PADDING.count(b"<!-- a padding to disable MSIE and Chrome friendly error page"
                              b" -->\r\n") == 6
