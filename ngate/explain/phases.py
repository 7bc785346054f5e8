"""The request phases as http/phases.py runs them, walked without a socket:

  connection   listen socket (and TLS: the URL's scheme against the socket's)
  server       Host -> server (exact, wildcard, regex, default)
  server rewrite  the server level's set/rewrite/return/if, in order
  location     nginx's search with every candidate; internal, slash redirect
  location rewrite, then the content phase: access, try_files, the content handler
               (handlers.py); an internal redirect (rewrite, try_files, index) searches again

The phases are http/phases.py's own: the walk follows the decisions they return (Explainer.walk,
with http/driver.py's `follow`) and describes the ACCESS decision instead of carrying it out.

Each phase appends to the Report; the first definite response ends the walk. `if` conditions and
values that depend on request-time variables are reported as such, never guessed.
"""
from __future__ import annotations

from ngate.config.model import BreakOp, IfOp, ReturnOp, RewriteOp, SetOp
from ngate.config.servers import listen_display
from ngate.explain import handlers
from ngate.explain.handlers import DONE
from ngate.explain.report import Report, status
from ngate.explain.request import (FakeConn, Renderer, depends, is_ip, make_context,
                                   url_host_header)
from ngate.explain.route import (LocationTrace, choose_listen, choose_server, describe_location,
                                 listens_of, server_names, where)
from ngate.http import driver, phases, rewrite
from ngate.http.decisions import ACCESS
from ngate.routing.servers import ServerSelector, normalize_host
from ngate.routing.uri import normalize_uri, split_request_uri

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_FILE_TESTS = ("-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x")


class Stop(Exception):
    """The walk ends: the report has its answer (or the rest depends on the request)."""


class Explainer:
    def __init__(self, config, req) -> None:
        self.config = config
        self.req = req
        self.report = Report()
        self.ctx = None
        self.render = None
        self.level, self.loc = "server", None   # the rewrite ops being run
        self.before = ""                        # the URI before the current `rewrite`

    # ------------------------------------------------------------ connection and server

    def run(self) -> Report:
        """Raises route.NotRouted when no listen socket takes the connection."""
        r, req = self.report, self.req
        key, why = choose_listen(self.config, req)
        listens = listens_of(self.config, key)
        ssl = any(lst.ssl for lst in listens)
        scheme = "https" if ssl else "http"
        r.add("request", f"{req.method} {req.target}"
              + (f" to {req.host}:{req.port}" if req.host else "")
              + (" (a WebSocket handshake: Upgrade headers added)" if req.websocket else ""))
        r.add("listen", f"{listen_display(listens[0])}{' ssl' if ssl else ''} "
                        f"({where(listens[0])}): {why}")
        local = None if key[0] in ("0.0.0.0", "::") else key[0]
        conn = FakeConn(scheme, local, key[1] if isinstance(key[1], int) else None)
        conn.trace = self               # http/rewrite.py reports each op to rewrite_op/_done
        headers = list(req.headers)
        host_raw = req.header("host")
        origin = "from -H"
        if host_raw is None:
            host_raw, origin = self._default_host(key, req)
            if host_raw:
                headers.insert(0, ("Host", host_raw))
        self.ctx = ctx = make_context(req, conn, headers)
        self.render = Renderer(ctx, self.config, local is not None)
        if req.host is not None and req.scheme != scheme:
            return self._scheme_mismatch(key, req, ssl, host_raw)
        host = normalize_host(host_raw.encode("latin-1")) if host_raw else None
        if host_raw and host is None:
            ctx.server = self.config.by_listen[key][0]
            r.add("host", f"{host_raw!r} ({origin}) is not a valid host name")
            r.answer(status(400) + " (client sent invalid host header)")
            return r
        server, why = choose_server(self.config, key, host)
        ctx.server = server
        ctx.host = host or server.names.first
        r.add("host", f"{host_raw!r} ({origin})" if host_raw else "(none)")
        r.add("server", f"server_name {server_names(server)} ({where(server)}): {why}")
        if ssl and req.host is not None:
            self._sni(key, req, server)
        self._named_server_captures(server, host)
        return self._request(server)

    def _default_host(self, key, req) -> tuple[str, str]:
        """(Host, where it comes from) when -H gives none."""
        if req.host is not None:
            return url_host_header(req), "from the URL"
        name = self.config.by_listen[key][0].names.first
        if name and not name.startswith("~") and "*" not in name:
            return name, "no -H Host: the default server's first name"
        lst = listens_of(self.config, key)[0]
        if lst.unix:
            return "", ""
        host = "localhost" if lst.host in ("0.0.0.0", "::") else lst.host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{lst.port}", "no -H Host and the default server has no name: the socket's"

    def _scheme_mismatch(self, key, req, ssl: bool, host_raw) -> Report:
        r = self.report
        if ssl:
            r.add("server", "(not chosen: the request is refused while its head is read)")
            r.answer(status(400) + ' "The plain HTTP request was sent to HTTPS port" '
                                   "(nginx logs 497)")
            r.warn(f"{req.scheme}:// to {listen_display(listens_of(self.config, key)[0])}, a "
                   "`listen ... ssl` socket: use https://")
        else:
            r.add("server", "(not chosen: the TLS handshake fails first)")
            r.answer("no HTTP response: the client's TLS ClientHello is not HTTP (nginx answers "
                     "400 to the garbage and closes)")
            r.warn(f"https:// to {listen_display(listens_of(self.config, key)[0])}, which is "
                   "not `listen ... ssl`: add ssl to the listen (and a certificate) or use http://")
        return r

    def _sni(self, key, req, server) -> None:
        if is_ip(req.host):
            self.report.more("TLS: no SNI (the URL's host is an address): the default server's "
                             "certificate")
            return
        default, servers = self.config.by_listen[key]
        tls_server = ServerSelector(default, servers).named(req.host) or default
        same = "the same server" if tls_server is server else \
            f"server {server_names(tls_server)} ({where(tls_server)})"
        self.report.more(f"TLS: SNI {req.host} picks the certificate of {same}")

    def _named_server_captures(self, server, host) -> None:
        if host and server.names.regexes and host not in server.names.exact:
            for rx in server.names.regexes:
                m = rx.search(host)
                if m is not None and rx.groupindex:
                    self.ctx.vars = {k: v or "" for k, v in m.groupdict().items()}
                    break

    # ------------------------------------------------------------ rewrite and locations

    def _request(self, server) -> Report:
        r, ctx = self.report, self.ctx
        path, ctx.args = split_request_uri(self.req.target)
        try:
            ctx.uri = normalize_uri(path, server.merge_slashes)
        except ValueError as err:
            r.add("uri", f"{path}: {err}")
            r.answer(status(400) + " (client sent invalid request)")
            return r
        shown = ctx.uri if ctx.uri == path else f"{ctx.uri} (normalised from {path})"
        r.add("uri", shown + (f", args {ctx.args}" if ctx.args else ""))
        ctx.conf = server.conf
        try:
            self.walk(phases.server_rewrite(ctx))   # the request path's phases and decisions
        except Stop:
            pass
        if r.outcome is None:
            r.answer(self.captured())
        return r

    def captured(self) -> str:
        """The answer the HTTP core wrote to the stand-in connection."""
        ctx = self.ctx
        head = bytes(ctx.conn.out).partition(b"\r\n\r\n")[0].decode("latin-1")
        if not head:
            return "no response: the connection is closed" + \
                (" (444)" if ctx.status == 444 else "")
        lines = head.split("\r\n")
        text = status(int(lines[0].split()[1]))
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "location":
                text += f", Location: {value.strip()}"
        if ctx.redirects > phases.MAX_REDIRECTS:
            text += " (rewrite or internal redirection cycle)"
        return text

    # ------------------------------------------------------------ told by http/phases.py

    def location(self, ctx, loc) -> None:
        """The location search chose `loc` for ctx.uri: report it and the candidates that lost."""
        r = self.report
        search = LocationTrace()
        search.find(ctx.server, ctx.uri)
        r.add("location", describe_location(loc) if loc is not None
              else "none: the server level's settings apply")
        for note in search.notes:
            r.more(note)
        conf = loc.conf if loc is not None else ctx.server.conf
        if conf.internal and not ctx.internal:
            r.more("the location is `internal`: only internal redirects reach it")
        self.level, self.loc = "location", loc

    def walk(self, decision) -> str:
        """Follow the phases' decisions as http/driver.py does: ACCESS (the access and content
        phases) and a `return` are described (handlers.py, _return) rather than run; another
        answer (a status page, a redirect) is written to the stand-in connection. DONE."""
        decision = driver.follow(self.ctx, decision)
        if decision is ACCESS:
            return handlers.content(self)
        if decision.__class__ is ReturnOp:  # described (values known only at request time too)
            self._return(decision, self.level, self.loc)
            return DONE
        driver.carry_out(self.ctx, decision)
        return DONE

    def internal_redirect(self, uri: str, why: str, keep_args: bool = False) -> str:
        """An internal redirect the content phase would make: http/phases.py counts it (500
        past 10), takes the URI as written and searches the location again."""
        self.report.add("redirect", f"internal redirect to {uri} ({why}): the location search "
                                    "runs again")
        return self.walk(phases.to_uri(uri, keep_args))

    # ------------------------------------------------------------ the rewrite module

    def rewrite_op(self, ctx, op) -> bool:
        """Before an op runs: True (run it), False (its value is known only at request time:
        reported, not run); Stop when the walk cannot go on statically."""
        cls = op.__class__
        if cls is SetOp:
            missing = self.render.unknown(op.value.text)
            if missing:
                self.render.unset.add(op.var)
                self.report.add("set", f"${op.var} ({where(op)}): {depends(missing)}")
                return False
            self.render.unset.discard(op.var)
        elif cls is IfOp:
            cond = op.condition
            missing = self.render.unknown(cond.left.text)
            if cond.right is not None and hasattr(cond.right, "text"):
                missing += [n for n in self.render.unknown(cond.right.text) if n not in missing]
            if missing:
                runs = summary(op.ops) if op.ops else "no ops; the block's own settings apply"
                self.report.add("if", f"if ({condition_text(cond)}) ({where(op)}): "
                                      f"{depends(missing)}; when true it runs: {runs}; "
                                      "explained as false")
                return False
        elif cls is RewriteOp:
            self.before = ctx.uri
            m = op.regex.search(ctx.uri)
            missing = self.render.unknown(op.replacement.text) if m is not None else ()
            if missing:
                rewrite.store_captures(ctx, m)
                self.report.add("rewrite", f"{rewrite_text(op)} ({where(op)}): matches "
                                           f"{ctx.uri}; the new URI {depends(missing)}")
                self.report.answer(f"not derivable statically: the rewritten URI "
                                   f"{depends(missing)}")
                raise Stop
        return True

    def rewrite_done(self, ctx, op, outcome) -> None:
        """What an op did (outcome: its result in http/rewrite.py; an `if`'s truth)."""
        r, cls = self.report, op.__class__
        if cls is SetOp:
            value = ctx.args if op.var in ("args", "query_string") else (ctx.vars or {}).get(
                op.var, "")
            r.add("set", f"${op.var} = {value!r} ({where(op)})")
        elif cls is IfOp:
            checked = " (the file system as it is now)" if op.condition.kind in _FILE_TESTS \
                else ""
            r.add("if", f"if ({condition_text(op.condition)}) ({where(op)}): "
                        f"{'true' if outcome else 'false'}{checked}")
        elif cls is BreakOp:
            r.add(self.level[:9], f"break ({where(op)}): the rewrite ops stop here")
        elif cls is RewriteOp:
            self._rewritten(ctx, op, outcome)

    def _rewritten(self, ctx, op, outcome) -> None:
        r, shown = self.report, rewrite_text(op)
        if outcome is rewrite.CONTINUE:
            r.add("rewrite", f"{shown} ({where(op)}): does not match {self.before}")
        elif outcome.__class__ is rewrite.Redirect:
            r.add("rewrite", f"{shown} ({where(op)}): matches {self.before}, redirects the "
                             "client")
        elif outcome is rewrite.ZERO_LENGTH:
            r.add("rewrite", f"{shown} ({where(op)}): the rewritten URI is empty")
            r.answer(status(500) + " (the rewritten URI has a zero length)")
            raise Stop
        else:
            args = f"?{ctx.args}" if ctx.args else ""
            then = {"last": "the location search runs again", "break": "stays in this location",
                    "": "the next ops run, then the location search runs again"}[op.flag]
            r.add("rewrite", f"{shown} ({where(op)}): {self.before} -> {ctx.uri}{args}; {then}")

    def _return(self, op, level: str, loc) -> None:
        r = self.report
        text = f" {short(op.text.text)}" if op.text is not None else ""
        before = "before any location is searched" if level == "server" else \
            "before the content handler"
        r.add("return", f"return {op.code}{text} ({where(op)}): the {level} rewrite phase runs "
                        f"first, {before}")
        conf = loc.conf if loc is not None else None
        if conf is not None and (conf.proxy.pass_ or conf.fastcgi.pass_):
            handler = "proxy_pass" if conf.proxy.pass_ else "fastcgi_pass"
            r.more(f"the location's {handler} is never reached")
        r.answer(self.describe_return(op.code, op.text))

    def describe_return(self, code: int, text_tpl) -> str:
        if code == 444:
            return "no response: the connection is closed (444)"
        value, missing = self.render.render(text_tpl) if text_tpl is not None else (None, [])
        note = f" ({depends(missing)})" if missing else ""
        if code in REDIRECT_CODES and value is not None:
            return f"{status(code)}, Location: {self.absolute(value)}{note}"
        if value is None:
            page = handlers.error_page_note(self.ctx.conf, code)
            body = "empty body" if code < 300 else page or "nginx's status page"
            return f"{status(code)}, {body}"
        return f"{status(code)}, body {short(value)!r}{note}"

    def absolute(self, location: str) -> str:
        """nginx's absolute_redirect for a Location starting with "/"."""
        if not location.startswith("/"):
            return location
        conn = self.ctx.conn
        default = "443" if conn.scheme == "https" else "80"
        host = self.ctx.host or conn.server_addr or "$server_addr"
        port = conn.server_port
        hostport = host if not port or port == default else f"{host}:{port}"
        return f"{conn.scheme}://{hostport}{location}"


def rewrite_text(op) -> str:
    return f"rewrite {op.regex.pattern} {op.replacement.text} {op.flag}".rstrip()


def short(text: str, limit: int = 60) -> str:
    """A config value on one line: newlines shown as \\n, long values cut."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def condition_text(cond) -> str:
    left = cond.left.text
    if cond.kind == "var":
        return left
    if cond.kind.lstrip("!") in ("-f", "-d", "-e", "-x"):
        return f"{cond.kind} {left}"
    right = cond.right.pattern if hasattr(cond.right, "pattern") else cond.right.text
    return f"{left} {cond.kind} {right}"


def summary(ops) -> str:
    parts = []
    for op in ops:
        cls = op.__class__
        if cls is ReturnOp:
            parts.append(f"return {op.code}" + (f" {short(op.text.text)}" if op.text else ""))
        elif cls is RewriteOp:
            parts.append(f"rewrite {op.regex.pattern} {op.replacement.text} {op.flag}".rstrip())
        elif cls is SetOp:
            parts.append(f"set ${op.var}")
        elif cls is IfOp:
            parts.append(f"if ({condition_text(op.condition)}) {{...}}")
        elif cls is BreakOp:
            parts.append("break")
    return "; ".join(parts)
