"""proxy_cookie_domain / proxy_cookie_path / proxy_cookie_flags: an upstream's Set-Cookie
rewritten as nginx's proxy module does (ngx_http_proxy_rewrite_cookie): the `domain=` and
`path=` attributes, then the Secure / HttpOnly / SameSite flags of the first flags rule whose
cookie name matches.

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


def rewrite(value: bytes, domains: tuple, paths: tuple, flags: tuple, ctx) -> bytes:
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
    if flags and _flags(flags, attrs, ctx):
        changed = True
    if not changed:
        return value
    return "; ".join(k if v is None else f"{k}={v}" for k, v in attrs if k is not None
                     ).encode("latin-1")


_SAMESITE = (("samesite=strict", "Strict"), ("samesite=lax", "Lax"), ("samesite=none", "None"))
FLAGS = frozenset({"secure", "nosecure", "httponly", "nohttponly", "samesite=strict",
                   "samesite=lax", "samesite=none", "nosamesite"})


def _flags(rules: tuple, attrs: list, ctx) -> bool:
    """nginx's ngx_http_proxy_rewrite_cookie_flags + edit_cookie_flags; True when a rule with
    known flags matched (the header is then rebuilt, as nginx does)."""
    name = attrs[0][0]
    for kind, cookie, values in rules:
        if kind == "regex":
            if cookie.search(name) is not None:
                break
        elif (cookie if isinstance(cookie, str) else cookie.render(ctx)).lower() == name.lower():
            break
    else:
        return False
    f = set()
    for v in values:
        v = (v if isinstance(v, str) else v.render(ctx)).lower()
        if v in FLAGS:
            f.add(v)
    if not f:
        return False
    samesite = next((value for flag, value in _SAMESITE if flag in f), None)
    for attr in attrs[1:]:
        key = (attr[0] or "").lower()
        if key in ("secure", "httponly"):
            if key in f:
                f.discard(key)
            elif "no" + key in f:
                attr[0] = None
        elif key == "samesite":
            if samesite is not None:
                if (attr[1] or "").lower() != samesite.lower():
                    attr[0], attr[1] = "SameSite", samesite
                f.discard("samesite=" + samesite.lower())
                samesite = None
            elif "nosamesite" in f:
                attr[0] = None
    if "secure" in f:
        attrs.append(["Secure", None])
    if "httponly" in f:
        attrs.append(["HttpOnly", None])
    if samesite is not None:
        attrs.append(["SameSite", samesite])
    return True


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
