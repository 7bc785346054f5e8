"""The header part of ngx_http_charset_filter_module: `charset name;` adds `; charset=name` to a
response's Content-Type when its type is one of `charset_types` and it names no charset yet.

ngate does not recode bodies: `source_charset`, `override_charset on` and `charset_map` are
refused (config/directives.py), so the destination charset is only ever announced, never
converted to, as nginx does when no source charset is set. Redirects (301, 302) get none, as in
nginx.
"""
from __future__ import annotations

# nginx's default charset_types
DEFAULT_TYPES = frozenset({b"text/html", b"text/xml", b"text/plain", b"text/vnd.wap.wml",
                           b"application/javascript", b"application/rss+xml"})
ANY = None          # `charset_types *`


def content_type(conf, status: int, ctype: bytes | None) -> bytes | None:
    """The Content-Type to send (ctype itself unless `charset` applies)."""
    name = conf.charset
    if not name or not ctype or status in (301, 302):
        return ctype
    low = ctype.lower()
    semi = low.find(b";")
    base = (low if semi < 0 else low[:semi]).strip()
    if semi >= 0 and b"charset=" in low[semi:]:
        return ctype                    # the response names its charset (override_charset off)
    types = conf.charset_types
    if types is not ANY and base not in types:
        return ctype
    return ctype + b"; charset=" + name
