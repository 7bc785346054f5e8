"""The `map` directive at request time (nginx's ngx_http_map_variable + ngx_http_map_find).

The source is rendered; with `hostnames` a trailing dot is dropped. Then, first hit wins:
exact keys (ASCII case-insensitive; `''` matches an empty value), with `hostnames` the longest
leading then trailing wildcard, then (for a non-empty value only, as nginx) the regexes in file
order, matched against the value as is. Else `default` ("" when the map has none).

A regex with groups makes its captures ($1.., named ones as variables) available to the value
while it renders; ctx.captures is restored afterwards so a map never clobbers the location's
captures (nginx leaves them clobbered; ngate does not copy that trap).
"""
from __future__ import annotations

from ngate.config.model import MapBlock

_ASCII_LOWER = {c: c + 32 for c in range(0x41, 0x5b)}


def evaluate_map(m: MapBlock, ctx) -> str:
    value = m.source.render(ctx)
    if m.hostnames and value.endswith("."):
        value = value[:-1]
    low = value.lower() if value.isascii() else value.translate(_ASCII_LOWER)
    tpl = m.exact.get(low)
    if tpl is None and m.hostnames:
        tpl = _wildcard(m, low)
    if tpl is None and value and m.regexes:
        for rx, rtpl in m.regexes:
            mo = rx.search(value)
            if mo is not None:
                return _render_with_captures(rtpl, mo, ctx) if rx.groups else rtpl.render(ctx)
    if tpl is None:
        tpl = m.default
        if tpl is None:
            return ""
    return tpl.render(ctx)


def _wildcard(m: MapBlock, host: str):
    for key, tpl in m.wild_front:             # ".example.com", longest first
        if host.endswith(key) and len(host) > len(key):
            return tpl
    for key, tpl in m.wild_back:              # "www.example.", longest first
        if host.startswith(key) and len(host) > len(key):
            return tpl
    return None


def _render_with_captures(tpl, mo, ctx) -> str:
    if mo.re.groupindex:
        vs = ctx.vars
        if vs is None:
            ctx.vars = vs = {}
        for name in mo.re.groupindex:
            vs[name] = mo.group(name) or ""
    saved = ctx.captures
    ctx.captures = (mo.group(0),) + mo.groups("")
    try:
        return tpl.render(ctx)
    finally:
        ctx.captures = saved
