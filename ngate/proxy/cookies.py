"""proxy_cookie_domain / proxy_cookie_path: the `domain=` and `path=` attributes of an upstream's
Set-Cookie rewritten as nginx's proxy module does (ngx_http_proxy_rewrite_cookie).

A rule is (kind, pattern, replacement Template):
  "domain"  the attribute equals pattern, case-insensitively, a leading "." of the value aside
            (it is kept); the whole value (after that dot) becomes the replacement
  "path"    the value starts with pattern; that prefix becomes the replacement
  "regex"   the pattern (re, searched) matches the value; the replacement, with $1..$9 of that
            match, becomes the whole value
The first rule that applies to an attribute wins. A header with a rewritten attribute is rebuilt
from its parts joined by "; " (nginx's form); any other header is passed on untouched.
"""
from __future__ import annotations


def rewrite(value: bytes, domains: tuple, paths: tuple, ctx) -> bytes:
    attrs = _parse(value.decode("latin-1"))
    if attrs[0][1] is None:
        return value                    # not name=value: nginx leaves it alone
    changed = False
    for attr in attrs[1:]:
        key, val = attr
        if val is None:
            continue
        low = key.lower()
        if domains and low == "domain":
            new = _apply(domains, val, ctx)
        elif paths and low == "path":
            new = _apply(paths, val, ctx)
        else:
            continue
        if new is not None:
            attr[1] = new
            changed = True
    if not changed:
        return value
    return "; ".join(k if v is None else f"{k}={v}" for k, v in attrs).encode("latin-1")


def _parse(text: str) -> list[list]:
    """nginx's ngx_http_proxy_parse_cookie: `; `-separated [name, value or None], trimmed."""
    out = []
    for part in text.split(";"):
        part = part.lstrip(" ")
        name, eq, val = part.partition("=")
        out.append([name.rstrip(" "), val.strip(" ") if eq else None])
    return out


def _apply(rules: tuple, val: str, ctx) -> str | None:
    for kind, pattern, repl in rules:
        if kind == "regex":
            m = pattern.search(val)
            if m is not None:
                ctx.captures = (m.group(0),) + tuple(g or "" for g in m.groups())
                return repl.render(ctx)
            continue
        text = pattern if isinstance(pattern, str) else pattern.render(ctx)
        if kind == "domain":
            dot = "." if val.startswith(".") else ""
            if val[len(dot):].lower() == text.lower():
                return dot + repl.render(ctx)
        elif val.startswith(text):
            return repl.render(ctx) + val[len(text):]
    return None
