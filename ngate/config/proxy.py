"""The proxy module's handlers with their own syntax (ngx_http_proxy_module): proxy_pass
(ProxyPass, implicit upstream groups), proxy_set_header, proxy_redirect, proxy_cookie_domain,
proxy_cookie_path, proxy_cookie_flags, proxy_http_version. Its plain scalars are rows of
directives.py built from slots.py.
"""
from __future__ import annotations

from ngate.config.model import ProxyPass
from ngate.config.slots import header_set, section_key
from ngate.config.upstreams import parse_proxy_pass
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables


def http_version(c, st) -> str:
    if st.args[0] not in ("1.0", "1.1"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def proxy_set_header(c, lv, st):
    name, value = st.args
    lv.vals.setdefault("proxy.set_header", []).append(header_set(c, st, name, value))
    lv.vals["proxy.set_header_given"] = True


def proxy_pass(c, lv, st):
    if "proxy.pass_" in lv.vals:
        raise ConfigError('"proxy_pass" directive is duplicate', st.where)
    url = st.args[0]
    loc = lv.location()
    if has_variables(url):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        lv.vals["proxy.pass_"] = ProxyPass(
            scheme=scheme, upstream=None, host_header="", uri=None,
            location_prefix=loc.pattern if loc is not None else "",
            template=c.template(url, st.where), where=st.where)
        return
    pp = parse_proxy_pass(url, st.where, c.upstreams, c.implicit,
                          loc.pattern if loc is not None else "")
    if pp.uri is not None and (lv.ctx in ("lif", "limit_except") or loc is None
                               or loc.modifier in ("~", "~*", "@")):
        raise ConfigError('"proxy_pass" cannot have URI part in location given by regular '
                          'expression, or inside named location, or inside "if" statement, '
                          'or inside "limit_except" block', st.where)
    lv.vals["proxy.pass_"] = pp


def proxy_redirect(c, lv, st):
    items = lv.vals.setdefault("proxy.redirect", [])
    if len(st.args) == 1:
        if st.args[0] not in ("default", "off"):
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        items.append(st.args[0])
        return
    src, dst = st.args
    if src.startswith("~*"):
        match = c.regex(src[2:], st.where, caseless=True)
    elif src.startswith("~"):
        match = c.regex(src[1:], st.where)
    else:
        match = c.template(src, st.where) if has_variables(src) else src
    items.append((match, c.template(dst, st.where)))


def proxy_cookie(c, lv, st):
    """proxy_cookie_domain / proxy_cookie_path `off` | `pattern replacement` (proxy/cookies.py):
    "~" (domain: any case) or "~*" / "~" (path) for a regex; a domain's leading dots dropped."""
    field = st.directive
    items = lv.vals.setdefault(section_key(field), [])
    if len(st.args) == 1:
        if st.args[0] != "off":
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        return                          # an empty list: nothing inherited
    pattern, repl = st.args
    domain = field == "proxy_cookie_domain"
    if pattern.startswith("~"):
        caseless = domain or pattern.startswith("~*")
        rx = c.regex(pattern[2:] if pattern.startswith("~*") and not domain else pattern[1:],
                     st.where, caseless=caseless)
        items.append(("regex", rx, c.template(repl, st.where)))
        return
    if domain:
        pattern = pattern[1:] if pattern.startswith(".") else pattern
        repl = repl[1:] if repl.startswith(".") else repl
    text = c.template(pattern, st.where) if has_variables(pattern) else pattern
    items.append(("domain" if domain else "path", text, c.template(repl, st.where)))


def proxy_cookie_flags(c, lv, st):
    """`proxy_cookie_flags off | cookie flag...` (`~cookie`: a regex, any case); flags may hold
    variables; unknown ones are ignored at run time, as nginx does."""
    items = lv.vals.setdefault("proxy.cookie_flags", [])
    if len(st.args) == 1:
        if st.args[0] != "off":
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        return
    cookie = st.args[0]
    flags = tuple(c.template(a, st.where) if has_variables(a) else a for a in st.args[1:])
    if cookie.startswith("~"):
        items.append(("regex", c.regex(cookie[1:], st.where, caseless=True), flags))
    else:
        items.append(("name", c.template(cookie, st.where) if has_variables(cookie) else cookie,
                      flags))
