"""nginx's mirror module (ngx_http_mirror_module.c): `mirror uri|off`, `mirror_request_body`.

At the precontent phase of a main request (after try_files, as nginx orders them), every
`mirror` URI of the location gets a background subrequest (proxy/subrequest.py) with the main
request's method, arguments and headers; its response is dropped and the main request does not
wait for it. With `mirror_request_body on` (the default) a request that has a body is read whole
first; the mirrors and then the location's own content handler get it. The phase runs again
after an internal redirect (nginx mirrors `/` and its index file both).

Difference: nginx holds the main request's access log line and its keep-alive connection until
the mirrors are done; ngate logs and goes on at once (the mirrors keep their own state).
"""
from __future__ import annotations

from ngate.errors import ConfigError
from ngate.http import log, phases
from ngate.http1.discard import test_expect
from ngate.observability import error_log
from ngate.proxy import subrequest


# ---------------------------------------------------------------- directives

def mirror(c, lv, st) -> None:
    """`mirror off` once, or any number of URIs (nginx: "is duplicate" when mixed)."""
    have = lv.vals.get("mirror.uris", ())
    if st.args[0] == "off":
        if "mirror.uris" in lv.vals:
            raise ConfigError('"mirror" directive is duplicate', st.where)
        lv.vals["mirror.uris"] = None
        return
    if "mirror.uris" in lv.vals and have is None:
        raise ConfigError('"mirror" directive is duplicate', st.where)
    lv.vals["mirror.uris"] = (*have, st.args[0])


# ---------------------------------------------------------------- the precontent phase

def phase(ctx, conf, then=phases.content) -> bool:
    """Start the mirrors of `conf` for main request `ctx` (a subrequest mirrors nothing); False
    when the content handler may run now, True when `then(ctx)` runs it once the body is read."""
    if ctx.main is not None:
        return False
    if conf.mirror.request_body and (ctx.content_length_in or ctx.body_chunked) \
            and ctx.req is not None:
        _BodyReader(ctx, conf, then).start()
        return True
    _start_all(ctx, conf.mirror.uris, None)
    return False


def _start_all(ctx, uris, body) -> None:
    for uri in uris:
        subrequest.start(ctx, uri, _done, method=ctx.method, args=ctx.args, body=body,
                         background=True)


def _done(sub_ctx, status, headers) -> None:
    """A mirror's response is dropped."""


class _BodyReader:
    """Reads the main request's body whole (ngx_http_read_client_request_body), then starts the
    mirrors with it and hands it back to the request for its own content handler."""
    __slots__ = ("ctx", "conf", "then", "chunks", "size")

    def __init__(self, ctx, conf, then) -> None:
        self.ctx = ctx
        self.conf = conf
        self.then = then
        self.chunks: list = []
        self.size = 0

    def start(self) -> None:
        ctx = self.ctx
        ctx.conn.writer = self
        test_expect(ctx)
        ctx.conn.attach_body(ctx.req, self)

    def body_data(self, data: bytes) -> None:
        self.size += len(data)
        limit = self.conf.client_max_body_size
        if limit and self.ctx.body_chunked and self.size > limit:
            self.ctx.req.consumer = None
            self.ctx.conn.writer = None
            return phases.finalize(self.ctx, 413)
        self.chunks.append(data)

    def body_end(self) -> None:
        ctx = self.ctx
        req = ctx.req
        if ctx.conn.writer is self:
            ctx.conn.writer = None
        if ctx.logged or req is None or req.consumer is not self:
            return
        body = b"".join(self.chunks)
        self.chunks = []
        req.consumer = None         # the body is handed back: the content handler reads it again
        req.body = [body] if body else None
        req.complete = True
        if ctx.body_chunked:        # nginx's read body has a length from now on
            ctx.body_chunked = False
            ctx.content_length_in = len(body)
        try:
            _start_all(ctx, self.conf.mirror.uris, body)
            self.then(ctx)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
            phases.internal_error(ctx, exc)

    def client_gone(self) -> None:
        """The client left (400) or timed out (downstream.client_timeout took this writer off the
        connection and decides the status) while its body was read: nothing is mirrored."""
        ctx = self.ctx
        if ctx.req is not None and ctx.req.consumer is self:
            ctx.req.consumer = None
        if ctx.conn.writer is self:         # nginx: reading the body fails with 400
            ctx.conn.writer = None
            ctx.status = 400
            error_log.info("client prematurely closed connection" + error_log.request_suffix(ctx),
                           ctx.conn.number)
        log.log_request(ctx)
