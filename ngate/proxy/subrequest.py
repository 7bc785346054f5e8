"""Subrequests: a request to a URI of the same server, run through the same phases (location
search, rewrite, content) for its status and headers only, as nginx's ngx_http_subrequest with
`header_only` (what auth_request uses).

The subrequest gets its own RequestContext on a SubrequestConn: every content handler writes to
its connection as usual; this one keeps the response head (status, headers) and drops the body,
and calls `done(sub_ctx, status, headers)` once the response is complete. The head and headers
of the main request are shared (nginx copies headers_in), the method is GET, the body is none
(auth_request gives its subrequest an empty one), `set` variables are shared, the access phase
is skipped (nginx runs it for the main request only) and it is logged (by its location's
access_log) only with `log_subrequest on`, when it is complete.
limit_req/limit_conn are skipped too (nginx applies them to a subrequest only when its main
request was not limited; a limit_conn slot is given back at the log phase, which a subrequest
does not have).

While a subrequest runs, the main request's connection has a SubrequestWatch as its writer: a
client that leaves or times out cancels the subrequest.

Body mode (SSI include, add_before_body/add_after_body): `start(..., node=n)` writes the
subrequest's body into n, a filters/postpone.py Node, in order with the main response; the head
is parsed and dropped (a subrequest's headers are never sent). `in_memory=True` keeps the body
in `conn.memory` instead (nginx's NGX_HTTP_SUBREQUEST_IN_MEMORY, for SSI's include set=): a
Content-Length or a body above the subrequest's location's subrequest_output_buffer_size is
nginx's "too big subrequest response", which ends the subrequest and the main request (the
client connection closes). A body-mode subrequest runs with http_minor 0 so that no handler frames
its body in chunks. Such subrequests do not take the main connection's writer (the main
response is streaming at the same time); filters/postpone.py cancels them if the client leaves.
"""
from __future__ import annotations

from ngate.filters.postpone import drain
from ngate.http import log, phases
from ngate.http.respond import TERMINATE_CODES
from ngate.http.context import RequestContext
from ngate.observability import error_log

_NO_DATA = b""


class _NullTransport:
    """The client side of a subrequest: nothing to pause, nothing buffered."""
    __slots__ = ()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


_NULL_TRANSPORT = _NullTransport()


class SubrequestConn:
    """Stands for the client connection in a subrequest; what it does not define (address,
    listen, scheme, runtime, TLS state ...) comes from the main request's connection."""
    __slots__ = ("parent", "done", "writer", "current", "queue", "_closing", "lost", "head",
                 "status", "headers", "finished", "ctx", "node", "memory", "mem_limit",
                 "output", "mem_node", "depth", "body")

    def __init__(self, parent, done) -> None:
        self.parent = parent
        self.done = done
        self.writer = None
        self.current = None
        self.queue = None
        self._closing = False
        self.lost = None
        self.head = b""
        self.status = 0
        self.headers: list = []
        self.finished = False
        self.ctx = None             # the subrequest's RequestContext
        self.node = None            # body mode: filters/postpone.py Node
        self.memory = None          # in memory: the body so far
        self.mem_limit = 0
        self.output = False         # body bytes were produced (nginx's r->request_output)
        self.mem_node = None        # in memory: the node the subrequest's own SSI wrote into
        self.depth = parent.depth + 1 if parent.__class__ is SubrequestConn else 1
        self.body = None            # bytes: the main request's body, read whole (mirror)

    trace = None
    ka_young = float("-inf")    # keep-alive: check_keepalive's whole test (not the parent's)

    def __getattr__(self, name: str):
        return getattr(self.parent, name)

    @property
    def transport(self):
        return _NULL_TRANSPORT

    @property
    def closing(self) -> bool:
        return self._closing

    @closing.setter
    def closing(self, value: bool) -> None:
        """A handler closing the connection ends the subrequest: a failure after the head
        leaves what was answered so far. An SSI or addition subrequest finalized with 444,
        408 or 499 terminates the main request too, as nginx's ngx_http_terminate_request."""
        self._closing = value
        if value:
            ctx = self.ctx
            if ctx is not None and ctx.status in TERMINATE_CODES and not self.finished \
                    and (self.node is not None or self.memory is not None):
                return self._terminate(ctx.status)
            self._finish()

    def write(self, data) -> None:
        if self.status:
            return self._body(data)
        head = self.head + bytes(data)
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return
        self.head = _NO_DATA
        lines = head[:end].split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        self.headers = [tuple(part.strip() for part in line.split(b":", 1))
                        for line in lines[1:] if b":" in line]
        if self.memory is not None and self._too_big_length():
            return
        if end + 4 < len(head):
            self._body(head[end + 4:])

    def _too_big_length(self) -> bool:
        """In memory: the buffer is subrequest_output_buffer_size of the subrequest's location
        (ngx_http_postpone_filter_in_memory); a Content-Length above it fails at once."""
        ctx = self.ctx
        self.mem_limit = ctx.conf.subrequest_output_buffer_size if ctx.conf is not None \
            else 4096
        for name, value in self.headers:
            if name.lower() == b"content-length" and value.isdigit() \
                    and int(value) > self.mem_limit:
                self._too_big(": " + value.decode())
                return True
        return False

    def _too_big(self, length: str) -> None:
        """nginx's "too big subrequest response": the output filter's NGX_ERROR finalizes the
        subrequest with it, which terminates the main request (ngx_http_terminate_request):
        the subrequest stops, the client connection closes, nothing more is sent."""
        ctx = self.ctx
        self.memory = None
        error_log.error("too big subrequest response" + length + self._action()
                        + error_log.request_suffix(ctx), self.number)
        self._terminate(0)

    def _terminate(self, status: int) -> None:
        """ngx_http_terminate_request: this subrequest stops, the main request ends with the
        client connection closed; logged with `status` when it had sent nothing yet."""
        main = self.ctx.main
        self.cancel()
        if status and not main.head_sent:
            main.status = status
        main.keep_alive = False
        main.conn.abort()

    def _action(self) -> str:
        """nginx's log action at that point: the upstream module's "sending to client", the
        static module's "sending response to client" (a file: its Last-Modified), none for an
        answer of the rewrite phase (`return`), as ngx_http_handler resets it per request."""
        if self.ctx.upstream_tries:
            return " while sending to client"
        if any(name.lower() == b"last-modified" for name, _ in self.headers):
            return " while sending response to client"
        return ""

    def _body(self, data) -> None:
        if not data or self.finished:
            return
        self.output = True
        node = self.node
        if node is not None:
            node.write(data)
            if node.root is not None:
                node.root.kick()
            return
        mem = self.memory
        if mem is not None:
            if len(mem) + len(data) > self.mem_limit:
                self._too_big("")
            else:
                mem += data

    def finish_request(self, ctx) -> None:
        self.writer = None
        self._finish()

    def abort(self) -> None:
        """A response cut short (an upstream that failed mid-body): its status stands, as the
        head was complete; without a head it is a 500."""
        w = self.writer
        self.writer = None
        if w is not None:
            w.client_gone()
        self._finish()

    def attach_body(self, req, consumer) -> None:
        """The main request's body, read whole before the subrequest started (mirror)."""
        if self.body is None:
            raise AssertionError("a subrequest has no body")
        if self.body:
            consumer.body_data(self.body)
        consumer.body_end()

    def _finish(self) -> None:
        if self.finished:
            return
        if self.mem_node is not None:
            self._body(b"".join(drain(self.mem_node)))
        self.finished = True
        ctx = self.ctx
        status = self.status or (ctx.status if ctx is not None else 0) or 500
        if ctx is not None and ctx.conf is not None and ctx.conf.log_subrequest:
            if not ctx.status:          # nginx: logged when finalized, by its location's logs
                ctx.status = status
            self.runtime.access_log(ctx)
        self.done(ctx, status, self.headers)
        if self.node is not None:
            self.node.release()

    def cancel(self) -> None:
        """The main request went away: stop the subrequest, call nobody."""
        self.finished = True
        self._closing = True
        self.node = None
        w = self.writer
        self.writer = None
        if w is not None:
            w.client_gone()


class SubrequestWatch:
    """The main connection's writer while its subrequest runs."""
    __slots__ = ("sub", "main")

    def __init__(self, sub: SubrequestConn, main) -> None:
        self.sub = sub
        self.main = main

    def client_gone(self) -> None:
        """The client closed (the main request is logged 499, as nginx) or timed out
        (downstream.client_timeout took this writer off the connection and logs it)."""
        self.sub.cancel()
        main = self.main
        if main.conn.writer is self:
            main.conn.writer = None
            if not main.logged and not main.head_sent:
                main.status = 499
                log.log_request(main)


def start(ctx, uri: str, done, method: str = "GET", args: str | None = None,
          body: bytes | None = None, background: bool = False, node=None,
          in_memory: bool = False) -> SubrequestConn:
    """Run a subrequest of `ctx` for `uri` (GET, no arguments, no body unless given);
    `done(sub_ctx, status, headers)` once its response is complete or cut short (status: the
    response's, else the one it ended with). With `node` or `in_memory` its body is kept (see
    the module docstring). A `background` one (mirror) does not hold the main request: the
    main connection's writer stays as it is."""
    main_conn = ctx.conn
    body_mode = node is not None or in_memory

    watch = None
    if body_mode or background:
        finished = done
    else:
        def finished(sub_ctx, status, headers):
            if main_conn.writer is watch:
                main_conn.writer = None
            done(sub_ctx, status, headers)

    conn = SubrequestConn(main_conn, finished)
    if body_mode:
        conn.node = node
        if node is not None:
            node.sub = conn
        else:
            conn.memory = bytearray()       # (its limit: the location's, once it answers)
    elif not background:
        watch = SubrequestWatch(conn, ctx)
        main_conn.writer = watch
    sub = conn.ctx = RequestContext(conn, method, ctx.request_uri, ctx.http_version, ctx.headers,
                                    ctx.hdr)
    if body_mode:
        sub.http_minor = 0              # no chunk framing: the body goes into the main one
    sub.args = args
    if body is not None:
        conn.body = body
        sub.content_length_in = len(body)
        sub.req = main_conn     # only passed back to attach_body
    sub.logged = True                   # not by log_request: log_subrequest on logs it at _finish
    sub.internal = True
    sub.main = ctx.main or ctx
    sub.server = ctx.server
    sub.host = ctx.host
    sub.conf = ctx.server.conf
    if ctx.vars is None:
        ctx.vars = {}
    sub.vars = ctx.vars
    sub.uri = uri
    sub.start = ctx.start
    phases.run_subrequest(sub, body_mode)   # nginx starts SSI's at the server rewrite phase
    return conn
