"""The upstream content handlers in `ngate explain`: proxy_pass (target, URI rewriting, the
request head sent upstream, timeouts, WebSocket upgrade and idle warnings) and fastcgi_pass
(the FastCGI params shown, loose `~ .php$` regexes). Request heads come from the router's own
code (proxy/proxy_request.py).
"""
from __future__ import annotations

import os
import re

from ngate.config.model import Upstream
from ngate.explain.report import seconds, status
from ngate.explain.request import depends
from ngate.explain.route import where
from ngate.proxy import proxy_request as pr
from ngate.proxy.resolve import resolve_proxy_url


# "~ .php$": an unescaped dot before a file extension, at the end of a regex
_LOOSE_EXTENSION = re.compile(r"(?:^|[^\\])\.([A-Za-z0-9]+)\$$")


FASTCGI_SHOWN = ("SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "DOCUMENT_ROOT", "REQUEST_URI",
                 "QUERY_STRING")


def proxy(ex, conf) -> None:
    ctx, r = ex.ctx, ex.report
    pp = conf.proxy.pass_
    shown = pp.template.text if pp.template is not None else \
        f"{pp.scheme}://{pp.host_header}{pp.uri or ''}"
    r.add("handler", f"proxy_pass {shown} ({where(pp)})")
    if pp.template is not None:
        target = _variable_target(ex, pp)
        if target is None:
            _websocket_warnings(ex, conf, None)
            return
        up, uri = target
    else:
        up = pp.upstream
        ctx.proxy_host = pp.host_header
        uri = pr.upstream_uri(ctx, pp)
        if pp.uri is None:
            r.more("URI: passed as the client sent it (proxy_pass has no URI part)")
        else:
            r.more(f"URI: {pp.location_prefix!r} at the start of {ctx.uri} is replaced by "
                   f"{pp.uri!r} (proxy_pass has a URI part)")
            _uri_warnings(ex, pp, uri)
    r.more(f"upstream: {describe_upstream(up)}")
    plan = conf.upstream_plan
    method, missing = ex.render.render(conf.proxy.method) if conf.proxy.method is not None \
        else (ctx.method, [])
    r.more("request sent upstream:")
    r.more(f"{method} {uri} {plan.version.decode()}"
           + (f"   (proxy_method {depends(missing)})" if missing else ""), 1)
    sent = _head_lines(ex, plan, conf)
    for line in sent:
        r.more(line, 1)
    r.more(f"timeouts: connect {seconds(conf.proxy.connect_timeout)}, read "
           f"{seconds(conf.proxy.read_timeout)}, send {seconds(conf.proxy.send_timeout)}")
    r.answer("whatever the upstream answers (502 if it cannot be reached, 504 on a timeout)")
    _websocket_warnings(ex, conf, sent, plan)


def _variable_target(ex, pp):
    ctx, r = ex.ctx, ex.report
    url, missing = ex.render.render(pp.template)
    if missing:
        r.more(f"upstream URL: {url} ({depends(missing)})")
        r.answer(f"whatever the upstream answers; which upstream {depends(missing)}")
        return None
    try:
        up, host, uri = resolve_proxy_url(ex.config, url)
    except ValueError:
        r.answer(f'{status(500)} (invalid URL prefix in "{url}")')
        return None
    except LookupError as exc:
        if ctx.conf.resolver is not None:
            r.answer(f"whatever the upstream answers, once the resolver found {exc.args[0]} "
                     f"(else {status(502)})")
            return None
        r.answer(f"{status(502)} (no resolver defined to resolve {exc.args[0]}: a name that is "
                 "not an upstream block)")
        return None
    ctx.proxy_host = host
    if uri is None:
        raw = ctx.request_uri
        uri = raw if raw[:1] == "/" and not ctx.internal else \
            pr.escape_uri(ctx.uri) + ("?" + ctx.args if ctx.args else "")
        r.more(f"upstream URL: {url} (no URI part: the client's URI is passed)")
    else:
        r.more(f"upstream URL: {url} (its URI is sent as is)")
    return up, uri


def describe_upstream(up) -> str:
    servers = ", ".join(s.name + (" backup" if s.backup else "") + (" down" if s.down else "")
                        for s in up.servers)
    if up.implicit:
        return servers
    pool = f", keepalive {up.keepalive}" if up.keepalive else ""
    return f"upstream {up.name} ({where(up)}): {servers} ({up.balancer}{pool})"


def _head_lines(ex, plan, conf) -> list[str]:
    """The header lines of the upstream request, as build_request_head writes them."""
    ctx = ex.ctx
    out = []
    for kind, name, value in plan.items:
        if kind is pr.STATIC:
            out.extend(value.decode("latin-1").rstrip("\r\n").split("\r\n"))
        elif kind is pr.TEMPLATE or kind is pr.HEADER:
            text, missing = ex.render.render(value)
            if missing:
                out.append(f"{name.decode()}: {text}   ({depends(missing)})")
            elif text:
                out.append(f"{name.decode()}: {text}")
        elif kind is pr.BODY_LENGTH:
            length = ctx.hdr.get(b"content-length")
            if length is not None:
                out.append(f"Content-Length: {length.decode('latin-1')}")
        elif b"chunked" in ctx.hdr.get(b"transfer-encoding", b"").lower():
            out.append("Transfer-Encoding: chunked")
    if conf.proxy.pass_request_headers:
        for name, value in ctx.headers:
            if name.lower() not in plan.skip:
                out.append(f"{name.decode('latin-1')}: {value.decode('latin-1')}"
                           "   (from the client)")
    return out


def _uri_warnings(ex, pp, uri: str) -> None:
    path = uri.split("?", 1)[0]
    if "//" in path:
        ex.report.warn(f"proxy_pass ({where(pp)}) sends {path}: location {pp.location_prefix} "
                       f"has no trailing slash but the URI part {pp.uri!r} has one; write "
                       f"`location {pp.location_prefix}/` or drop the URI's slash")
    elif pp.location_prefix.endswith("/") and not pp.uri.endswith("/") \
            and len(ex.ctx.uri) > len(pp.location_prefix):
        ex.report.warn(f"proxy_pass ({where(pp)}) sends {path}: the URI part {pp.uri!r} has no "
                       f"trailing slash but location {pp.location_prefix} has one, so the path "
                       "segments are glued together")


def _websocket_warnings(ex, conf, sent, plan=None) -> None:
    """The seed's recipe, checked: HTTP/1.1, Upgrade and Connection passed, idle timeout."""
    r, ctx = ex.report, ex.ctx
    names = {h.lname: h for h in conf.proxy.set_header}
    sets_upgrade, sets_connection = b"upgrade" in names, b"connection" in names
    asks = b"upgrade" in ctx.hdr
    at = f"location {ctx.loc.pattern} ({where(ctx.loc)})" if ctx.loc is not None else "the server"
    if (sets_upgrade or sets_connection) and conf.proxy.http_version != "1.1":
        r.warn(f"{at} sets proxy_set_header {'Upgrade' if sets_upgrade else 'Connection'} but "
               "not `proxy_http_version 1.1;`: the upstream request is HTTP/1.0, which cannot "
               "be upgraded, so WebSocket handshakes fail")
    if sets_upgrade and not sets_connection:
        r.warn(f"{at} sets proxy_set_header Upgrade but not Connection: the upstream gets "
               "`Connection: close` and will not switch protocols; add "
               "`proxy_set_header Connection \"upgrade\";`")
    if asks and sent is not None:
        _upgrade_request(ex, conf, sent, at, sets_upgrade, sets_connection)
    if asks or sets_upgrade:
        _idle_warning(ex, conf, at)


def _upgrade_request(ex, conf, sent, at, sets_upgrade, sets_connection) -> None:
    r = ex.report
    heads = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in sent}
    if conf.proxy.http_version == "1.1" and not sets_upgrade and not sets_connection:
        r.warn(f"this request asks for an Upgrade but {at} has proxy_http_version 1.1 without "
               "proxy_set_header Upgrade $http_upgrade and Connection \"upgrade\": Upgrade is "
               "hop-by-hop and is not passed, so the backend sees a plain GET")
    elif conf.proxy.http_version != "1.1" and not sets_upgrade:
        r.warn(f"this request asks for an Upgrade but {at} proxies with HTTP/1.0 and does not "
               "pass Upgrade: add proxy_http_version 1.1; proxy_set_header Upgrade "
               "$http_upgrade; proxy_set_header Connection \"upgrade\";")
    elif sets_upgrade and "upgrade" not in heads:
        r.warn(f"this request asks for an Upgrade but the Upgrade header {at} sends upstream "
               "is empty: no tunnel can start")
    connection = heads.get("connection", "")
    if sets_connection and "depends on" not in connection \
            and "upgrade" not in connection.lower():
        r.warn(f"this request asks for an Upgrade but {at} sends `Connection: {connection}` "
               "upstream: the backend will not switch protocols")


def _idle_warning(ex, conf, at) -> None:
    timeout = conf.proxy.read_timeout
    ping = conf.websocket.ping
    if not ping:
        ex.report.warn(f"WebSocket tunnels through {at} are closed after proxy_read_timeout "
                       f"{seconds(timeout)} without traffic in either direction (clients see "
                       f"1006); ngate can keep them alive: `websocket_ping {_ping_hint(timeout)};`"
                       " (an ngate extension; it also drops peers that stop answering)")
    elif ping >= timeout:
        ex.report.warn(f"websocket_ping {seconds(ping)} at {at} is not shorter than "
                       f"proxy_read_timeout {seconds(timeout)}: an idle tunnel can time out "
                       "before the ping; use a shorter interval")


def _ping_hint(timeout: float) -> str:
    return seconds(max(1.0, min(30.0, timeout / 2)))


def fastcgi(ex, conf) -> None:
    r = ex.report
    target = conf.fastcgi.pass_
    if target.__class__ is Upstream:
        r.add("handler", f"fastcgi_pass {describe_upstream(target)}")
    else:
        addr, missing = ex.render.render(target)
        r.add("handler", f"fastcgi_pass {addr}" + (f" ({depends(missing)})" if missing else ""))
    _loose_regex(ex)
    params = {}
    for p in conf.fastcgi.param:
        params[p.name] = ex.render.render(p.value)
    r.more(f"FastCGI params ({len(conf.fastcgi.param)} fastcgi_param; the client's headers "
           "follow as HTTP_*):")
    for name in FASTCGI_SHOWN:
        if name in params:
            value, missing = params[name]
            r.more(f"{name} = {value}" + (f"   ({depends(missing)})" if missing else ""), 1)
    r.more(f"timeouts: connect {seconds(conf.fastcgi.connect_timeout)}, read "
           f"{seconds(conf.fastcgi.read_timeout)}, send {seconds(conf.fastcgi.send_timeout)}")
    script = params.get("SCRIPT_FILENAME")
    text = next((p.value.text for p in conf.fastcgi.param if p.name == "SCRIPT_FILENAME"), "")
    if script is None:
        r.warn("no fastcgi_param SCRIPT_FILENAME: php-fpm cannot find the script and answers "
               "404 \"File not found.\" (add `fastcgi_param SCRIPT_FILENAME "
               "$document_root$fastcgi_script_name;`)")
    elif script[1]:
        r.more(f"SCRIPT_FILENAME {text} {depends(script[1])}: whether the file exists is not "
               "known here")
    elif os.path.isfile(script[0]):
        r.more(f"SCRIPT_FILENAME {text} -> {script[0]}: the file exists")
    else:
        r.more(f"SCRIPT_FILENAME {text} -> {script[0]}: no such file")
        r.warn(f"{script[0]} does not exist: php-fpm answers 404 \"File not found.\" "
               "(\"Primary script unknown\" in its log)")
    r.answer("whatever the FastCGI application answers (502 if it cannot be reached, 504 on a "
             "timeout)")


def _loose_regex(ex) -> None:
    loc = ex.ctx.loc
    if loc is None or loc.regex is None:
        return
    m = _LOOSE_EXTENSION.search(loc.pattern)
    if m is not None:
        ext = m.group(1)
        ex.report.warn(f"location {loc.modifier} {loc.pattern} ({where(loc)}): the dot is "
                       f"unescaped and matches any character, so /x{ext} matches too; write "
                       f"\\.{ext}$")
