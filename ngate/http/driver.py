"""Carrying out what the phases decide (http/decisions.py): the one place where the HTTP core
writes through the front end in `ctx.conn` (by http/respond.py) or touches the loop.

`carry_out(ctx, decision)` loops over two functions: `step` moves the request inside the core
(ACCESS, Finalize, InternalRedirect, NamedLocation give the next decision, computed by
http/phases.py and http/finalize.py); `answer` carries out the rest: Page, Redirect and a
ReturnOp's response are written by http/respond.py (a `return` whose status goes to
error_page gives a Finalize instead), the content handler (or PRECONTENT) is called and writes
its own response, SUSPENDED ends it, Delay waits on a loop timer. The content handler is the
one decision that is not of a decision type: `answer` checks every decision type first and
calls what is left, so any callable serves (a plain function takes a shorter path). ngate explain
(explain/phases.py) walks the same decisions with `follow` and describes ACCESS instead of
carrying it out; tests/harness/fake_frontend.py records each one.

The rest are the entry points of front ends and modules, re-exported by http/phases.py
(phases.start_request, phases.finalize, phases.internal_redirect ...): each makes a decision
and carries it out here. Internal redirects (error_page, try_files, index, X-Accel-Redirect,
named locations) and subrequests all go through `carry_out`.
"""
from __future__ import annotations

import traceback
from types import FunctionType

from ngate.config.model import ReturnOp
from ngate.config.model_rewrite import text_bytes
from ngate.http import finalize as special
from ngate.http.decisions import (ACCESS, FINALIZE, PAGE, PRECONTENT, SUSPENDED, Delay,
                                  Finalize, InternalRedirect, NamedLocation, Page, Redirect)
from ngate.http.finalize import error_page_for  # noqa: F401 - for phases' callers
from ngate.http.log import log_request
from ngate.http.respond import (REDIRECT_CODES, content_type, send_redirect, send_response,
                                send_status)
from ngate.http1.discard import discard
from ngate.observability import error_log

_MOVES = (Finalize, InternalRedirect, NamedLocation)


def carry_out(ctx, d) -> None:
    """Carry out `d` and the decisions that follow it: `step` while the request moves inside
    the core, `answer` once it answers (written out first for the two common paths, the
    location's content handler and a `return`)."""
    while d is not None:
        if d is ACCESS:
            d = phases.access(ctx)
        cls = d.__class__
        if cls is FunctionType:         # the location's content handler (others: `answer`)
            d(ctx)
            return
        if cls is ReturnOp:
            d = _return(ctx, d.code, d.text)
            continue
        nxt = step(ctx, d)
        d = answer(ctx, d) if nxt is d else nxt


def step(ctx, d):
    """One move inside the core: the next decision, or `d` itself when `d` answers."""
    if d is ACCESS:
        return phases.access(ctx)
    cls = d.__class__
    if cls is Finalize:
        return special.special_response(ctx, d.status)
    if cls is InternalRedirect:
        return phases.redirect(ctx, d)
    if cls is NamedLocation:
        return phases.named(ctx, d.name)
    return d


def follow(ctx, d):
    """The moves from `d` (a status to error_page, an internal redirect, a named location) up
    to the first decision that is not one: where ngate explain looks (ACCESS or an answer)."""
    while d.__class__ in _MOVES:
        d = step(ctx, d)
    return d


def answer(ctx, d):
    """Carry out a decision that answers or goes on by itself; None, or the decision that
    follows (a `return` whose status goes to error_page)."""
    cls = d.__class__
    if cls is FunctionType:             # the location's content handler
        return d(ctx)
    if cls is ReturnOp:
        return _return(ctx, d.code, d.text)
    if cls is Page:
        return send_status(ctx, d.status)
    if cls is Redirect:     # rewrite's and the slash redirect (301, 302), error_page's (any)
        return send_redirect(ctx, d.code, d.location, True)
    if d is PRECONTENT:
        return _precontent(ctx, ctx.conf)
    if d is SUSPENDED:
        return None                     # the step goes on by itself (access_done, limit_req)
    if cls is Delay:
        return _delay(ctx, d)
    # what is left of the closed set is the content handler, whatever callable it is (a bound
    # method, a functools.partial, a compiled function): FunctionType above is a fast path only
    return d(ctx)


def _precontent(ctx, conf) -> None:
    """The precontent steps (try_files, mirror: True when one took the request over), then the
    content handler."""
    for step in conf.precontent_steps:
        if step(ctx, conf):
            return
    conf.content(ctx)


def _delay(ctx, d: Delay) -> None:
    """auth_delay (nginx's ngx_http_core_auth_delay): the refusal waits, with the client still
    watched for closing."""
    error_log.info("delaying unauthorized request" + error_log.request_suffix(ctx),
                   ctx.conn.number)
    ctx.conn.runtime.loop.call_later(d.seconds, _delayed, ctx, d.then)


def _delayed(ctx, then) -> None:
    if ctx.logged:
        return                  # the client left meanwhile (499 logged)
    carry_out(ctx, then)


def _return(ctx, code: int, text):
    """The rewrite module's `return`: its response, written; or the status for error_page.
    (start_request writes out the case of a fixed text: a change here is made there too.)"""
    if code == 444:
        return PAGE[444]
    if (code < 400 or text is not None) and (ctx.body_chunked or b"expect" in ctx.hdr) \
            and not discard(ctx):
        # (discard has nothing to do without a chunked body or an Expect header)
        return None     # ngx_http_send_response discards the body first: it was invalid
    value = None if text is None else text.text if text.static else text.render(ctx)
    if code in REDIRECT_CODES:
        if value is None:
            ctx.location_out = ""       # ngx_http_send_response: an empty Location header
            ctx.rare = True
            return FINALIZE[code]
        ctx.status = code
        if ctx.conf.error_page and not ctx.error_pages_done \
                and error_page_for(ctx.conf, code) is not None:
            ctx.location_out = value    # nginx keeps the Location header across the error_page
            ctx.rare = True             # (http/context.py _GUARDED)
            return FINALIZE[code]
        return send_redirect(ctx, code, value)
    if value is None:
        if code >= 400:
            return FINALIZE[code]
        if ctx.status_override is None and code == 204:
            return send_response(ctx, code, b"", None)      # nginx drops a 204's Content-Type
        return send_response(ctx, code, b"", content_type(ctx.conf, ctx.uri))
    # a text is sent as it is (ngx_http_send_response): no error_page, the error_page status wins
    try:
        body = value.encode("latin-1")
    except UnicodeEncodeError:
        body = _return_bytes(value)
    conf = ctx.conf
    known = conf.mime       # respond.content_type's answers kept for the URI, looked up here
    mime = known.get(ctx.uri) if known is not None else None
    return send_response(ctx, code, body, mime if mime is not None else content_type(conf, ctx.uri))


_return_bytes = text_bytes     # (model_rewrite.py: a fixed text's bytes are made with it)


# ---------------------------------------------------------------- entry points

def start_request(ctx, req) -> None:
    """A front end's new request (server/connection.py, http2/connection.py)."""
    try:
        d = phases.begin(ctx, req)
        if d is ACCESS:                 # carry_out's first steps, written out for the
            conf = ctx.conf             # common path (no frame between phases and handler)
            if conf.access_steps and ctx.main is None or conf.precontent_steps:
                d = phases.access(ctx)
            else:
                d = conf.content        # phases.access's answer without access steps
            if d.__class__ is FunctionType:
                return d(ctx)
        elif d.__class__ is ReturnOp:
            body = d.body
            if body is not None and not ctx.body_chunked and b"expect" not in ctx.hdr:
                # _return's usual case, written out (a frame less): a fixed text, sent as it is
                # (its bytes made when the config compiled: model_rewrite.py ReturnOp.body)
                known = ctx.conf.mime
                mime = known.get(ctx.uri) if known is not None else None
                return send_response(ctx, d.code, body,
                                     mime if mime is not None else content_type(ctx.conf, ctx.uri))
            d = _return(ctx, d.code, d.text)
            if d is None:
                return
        carry_out(ctx, d)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(ctx, exc)


def run_subrequest(sub, server_rewrite_first: bool) -> None:
    """A subrequest (proxy/subrequest.py made its context and front end): the phases from the
    server rewrite phase (SSI, addition) or from the location search (auth_request, mirror)."""
    try:
        carry_out(sub, phases.server_rewrite(sub) if server_rewrite_first
                  else phases.find_location_phase(sub))
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(sub, exc)


def finalize(ctx, status: int) -> None:
    """A status from a module (a content handler's 404, an upstream's intercepted error ...):
    error_page or its status page."""
    carry_out(ctx, FINALIZE[status])


def internal_redirect(ctx, uri: str, keep_args: bool = False) -> None:
    """try_files' and index's internal redirect."""
    carry_out(ctx, phases.to_uri(uri, keep_args))


def named_location(ctx, name: str) -> None:
    """try_files' fallback to a named location."""
    carry_out(ctx, NamedLocation(name))


def accel_redirect(ctx, target: str) -> None:
    """An upstream's X-Accel-Redirect (proxy/response_head.py)."""
    carry_out(ctx, phases.accel(ctx, target))


def access_phase(ctx) -> None:
    """The access phase again (a limit_req delay ended)."""
    carry_out(ctx, ACCESS)


def access_done(ctx, status: int) -> None:
    """An access step's verdict after it was SUSPENDED (an auth_request subrequest)."""
    if ctx.logged or ctx.conn.closing:
        return              # the client left meanwhile
    guarded(carry_out, ctx, phases.denied(ctx, status) if status else PRECONTENT)


def content(ctx) -> None:
    """The content phase alone (after a precontent step that read the body)."""
    ctx.conf.content(ctx)


def guarded(step, ctx, *args) -> None:
    """Run a phase step; a bug costs one request (500), not the worker."""
    try:
        step(ctx, *args)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(ctx, exc)


def reject_request(ctx, status: int, message: str) -> None:
    """A request refused before its location (http2/request.py)."""
    carry_out(ctx, special.rejected(ctx, status, message))


def no_upstream_handler(ctx) -> None:
    """The content handler of IfOp.kept (an if without proxy_pass after one with it)."""
    error_log.alert("no upstream configuration" + error_log.request_suffix(ctx), ctx.conn.number)
    carry_out(ctx, FINALIZE[500])


def fail(ctx, err) -> None:
    """The one place an upstream failure (its status, log_message, level) becomes a response
    (or a closed connection)."""
    if err.log_message:
        error_log.log(err.level, err.log_message + error_log.request_suffix(ctx), ctx.conn.number)
    if err.status == 499:
        ctx.status = 499
        log_request(ctx)
        return
    if ctx.head_sent:
        ctx.keep_alive = False
        ctx.conn.closing = True
        ctx.conn.transport.close()
        log_request(ctx)
        return
    carry_out(ctx, FINALIZE[err.status])


def internal_error(ctx, exc: Exception) -> None:
    trace = "".join(traceback.format_exception(exc)).replace("\n", " | ")
    error_log.alert("internal error: " + trace + error_log.request_suffix(ctx), ctx.conn.number)
    if not ctx.head_sent and not ctx.conn.closing:
        ctx.keep_alive = False
        ctx.status_override = None
        send_status(ctx, 500)
    else:
        ctx.conn.abort()


# the phases run the decisions' next steps, and re-export the entry points above: imported
# last, so that either module may be imported first
from ngate.http import phases  # noqa: E402
