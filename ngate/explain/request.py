"""The request `ngate explain` routes: parsed from the command line, held in a RequestContext
whose connection is a stand-in (no socket), and rendered honestly.

`Renderer` renders a Template only from what is known statically (the request line, the
headers, the listen socket, the config, the file system now); a variable whose value exists only
at request time ($remote_addr, $request_time, $upstream_*, a `set` not simulated ...) is left
as `$name` and reported, so the output can say "depends on $name at request time".
"""
from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ngate.errors import ConfigError
from ngate.http.context import RequestContext
from ngate.routing.variables import Template, UserVars, lookup, registry

_VAR_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
DEFAULT_PORTS = {"http": 80, "https": 443}
WS_SCHEMES = {"ws": "http", "wss": "https"}
# values that exist only while a real request runs
REQUEST_TIME = frozenset({
    "remote_addr", "remote_port", "binary_remote_addr", "connection", "connection_requests",
    "pipe", "request_time", "msec", "time_local", "time_iso8601", "pid", "status",
    "body_bytes_sent", "bytes_sent", "request_length", "request_body", "remote_user",
    "proxy_add_x_forwarded_for", "upstream_addr", "upstream_status", "upstream_response_time",
    "upstream_connect_time", "upstream_header_time", "upstream_bytes_received",
    "upstream_bytes_sent", "ssl_protocol", "ssl_cipher", "ssl_session_reused",
    "ssl_client_verify", "ssl_client_s_dn", "ssl_server_name",
    "realip_remote_addr", "realip_remote_port", "proxy_protocol_addr", "proxy_protocol_port",
    "proxy_protocol_server_addr", "proxy_protocol_server_port", "request_id",
    "connections_active", "connections_reading", "connections_writing", "connections_waiting",
})
REQUEST_TIME_PREFIXES = ("sent_http_", "upstream_http_")


class UsageError(Exception):
    pass


@dataclass
class ExplainRequest:
    """What the user asked: `-X METHOD -H 'Name: value' URL`."""
    method: str
    scheme: str                  # http | https
    host: str | None             # the URL's host (None for a bare /path)
    port: int | None
    target: str                  # the request target: /path?query
    headers: list = field(default_factory=list)   # [(name, value)] as given
    websocket: bool = False      # ws:// or wss://

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for n, v in self.headers if n.lower() == low), None)


def parse_request(url: str, method: str, header_args: list[str]) -> ExplainRequest:
    headers = [_header(h) for h in header_args]
    if url.startswith("/"):
        return ExplainRequest(method, "http", None, None, url.split("#", 1)[0], headers)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise UsageError(f'invalid URL "{url}": {err}') from None
    scheme = parts.scheme.lower()
    websocket = scheme in WS_SCHEMES
    scheme = WS_SCHEMES.get(scheme, scheme)
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UsageError(f'invalid URL "{url}": expected http://, https://, ws://, wss:// or /path')
    target = (parts.path or "/") + ("?" + parts.query if parts.query or url.endswith("?") else "")
    req = ExplainRequest(method, scheme, parts.hostname, port or DEFAULT_PORTS[scheme], target,
                         headers, websocket)
    if websocket:
        _add_missing(req, (("Upgrade", "websocket"), ("Connection", "Upgrade"),
                           ("Sec-WebSocket-Version", "13"),
                           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")))
    return req


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise UsageError(f'invalid header "{text}": expected "Name: value"')
    return name, value.strip()


def _add_missing(req: ExplainRequest, pairs) -> None:
    for name, value in pairs:
        if req.header(name) is None:
            req.headers.append((name, value))


def url_host_header(req: ExplainRequest) -> str:
    """The Host header a client sends for the URL (curl's: the port only when not default)."""
    host = req.host
    if ":" in host:
        host = f"[{host}]"
    return host if req.port == DEFAULT_PORTS[req.scheme] else f"{host}:{req.port}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- the stand-in connection

class _NoRuntime:
    """The worker as the HTTP core sees it while explaining: nothing is logged or counted."""
    draining = False
    stats = None
    loop = None

    def access_log(self, ctx) -> None:
        pass


class FakeConn:
    """The front end of an explained request (http/__init__.py's interface): what the HTTP core
    answers is kept in `out`, nothing is sent. What variables and path mapping read from a
    connection is here too; request-time fields are never rendered (Renderer refuses them), so
    their values here are placeholders."""
    ka_young = float("-inf")        # keep-alive: respond.check_keepalive's whole test

    def __init__(self, scheme: str, server_addr: str | None, server_port: int | None) -> None:
        self.out = bytearray()          # the response the HTTP core wrote
        self.closing = False
        self.writer = None
        self.started = time.monotonic()
        self.transport = self
        self.scheme = scheme
        self.server_addr = server_addr or ""
        self.server_port = str(server_port) if server_port else ""
        self.remote_addr = "127.0.0.1"
        self.remote_port = "0"
        self.tls = None
        self.proxy_protocol = None
        self.number = 0
        self.requests = 1
        self.queue = None
        self.runtime = _NoRuntime()
        self.trace = None               # the Explainer (explain/phases.py)

    def write(self, data) -> None:
        self.out += data

    def finish_request(self, ctx) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.closing = True


def make_context(req: ExplainRequest, conn: FakeConn, headers: list) -> RequestContext:
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    hdr: dict = {}
    for name, value in raw:
        hdr.setdefault(name.lower(), value)
    return RequestContext(conn, req.method, req.target, "1.1", raw, hdr)


# ---------------------------------------------------------------- honest rendering

class Renderer:
    """Render templates from what is known statically; report the rest."""

    def __init__(self, ctx: RequestContext, config, server_addr_known: bool) -> None:
        self.ctx = ctx
        self.config = config
        self.server_addr_known = server_addr_known
        self.unset: set[str] = set()      # `set` variables whose value is request-time

    def unknown(self, text: str) -> list[str]:
        """The `$names` in text whose value exists only at request time."""
        out = []
        for m in _VAR_RE.finditer(text):
            name = m.group(1) or m.group(2)
            if not self.known(name) and name not in out:
                out.append(name)
        return out

    def known(self, name: str, seen: frozenset = frozenset()) -> bool:
        if name.isdigit():
            return True
        if name in self.unset:
            return False
        vs = self.ctx.vars
        if vs is not None and name in vs:
            return True
        block = self.config.maps.get(name)
        if block is not None:
            return name not in seen and self._map_known(block, seen | {name})
        if name in REQUEST_TIME or name.startswith(REQUEST_TIME_PREFIXES):
            return False
        if name == "server_addr":
            return self.server_addr_known
        return registry().known(name)

    def _map_known(self, block, seen: frozenset) -> bool:
        values = [block.source, block.default, *block.exact.values(),
                  *(v for _, v in block.regexes), *(v for _, v in block.wild_front),
                  *(v for _, v in block.wild_back)]
        for tpl in values:
            if tpl is None:
                continue
            for m in _VAR_RE.finditer(tpl.text):
                if not self.known(m.group(1) or m.group(2), seen):
                    return False
        return True

    def render(self, tpl) -> tuple[str, list[str]]:
        """(text, unknown names): known variables rendered, unknown ones left as `$name`."""
        if tpl is None:
            return "", []
        if isinstance(tpl, str):
            return tpl, []
        missing = self.unknown(tpl.text)
        if not missing:
            return tpl.render(self.ctx), []
        out, pos = [], 0
        for m in _VAR_RE.finditer(tpl.text):
            out.append(tpl.text[pos:m.start()])
            name = m.group(1) or m.group(2)
            out.append(m.group(0) if name in missing else self._value(name))
            pos = m.end()
        out.append(tpl.text[pos:])
        return "".join(out), missing

    def _value(self, name: str) -> str:
        users = UserVars({name} if name in (self.ctx.vars or {}) else (), self.config.maps)
        try:
            getter = lookup(name, users)
        except ConfigError:
            return "$" + name
        return Template("$" + name, (getter,)).render(self.ctx)


def depends(names: list[str]) -> str:
    """ "depends on $a, $b at request time" (or "")."""
    if not names:
        return ""
    return "depends on " + ", ".join("$" + n for n in names) + " at request time"
