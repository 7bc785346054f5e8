"""proxy_pass: the content handler for HTTP upstreams.

Each request gets one proxy/exchange.py UpstreamExchange speaking HTTP/1.x
(proxy/wire_http1.py) with the location's compiled plan (proxy/proxy_request.py). A proxy_pass
with variables is resolved first (an `upstream` block's name, or an address).
"""
from __future__ import annotations

from ngate.observability import error_log
from ngate.http import phases
from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy.exchange_base import fill, new
from ngate.proxy.proxy_request import plan_for
from ngate.proxy.wire_http1 import HTTP1
from ngate.routing.uri import escape_uri


def proxy_exchange(ctx, upstream, plan=None) -> UpstreamExchange:
    """An HTTP/1.x exchange to `upstream` with the location's plan (or `plan`)."""
    return UpstreamExchange(ctx, upstream, HTTP1, plan_for(ctx.conf) if plan is None else plan)


def proxy_handler(ctx) -> None:
    pp = ctx.conf.proxy.pass_
    ctx.proxy_host = pp.host_header
    if pp.template is not None:
        return _variable_proxy(ctx, pp)
    # UpstreamExchange(ctx, pp.upstream, HTTP1, plan_for(ctx.conf)) without the __init__ call
    fill(new(UpstreamExchange), ctx, pp.upstream, HTTP1, ctx.conf.upstream_plan).start()


def _variable_proxy(ctx, pp) -> None:
    """proxy_pass with variables: the rendered URL; its host is first looked up among upstreams."""
    target = resolve_variable(ctx, pp)
    if target is not None:
        start_exchange(ctx, proxy_exchange, *target)


def resolve_variable(ctx, pp):
    """(upstream, uri) for a proxy_pass with variables, ctx.proxy_host set; None when the
    request was answered (an invalid URL, a name to resolve)."""
    from ngate.proxy.resolve import resolve_proxy_url
    from ngate.resolver.hook import lookup as resolver_lookup
    url = pp.template.render(ctx)
    try:
        upstream, host_header, uri = resolve_proxy_url(ctx.conn.runtime.config, url, ctx)
    except ValueError:
        error_log.error(f"invalid URL prefix in \"{url}\"" + error_log.request_suffix(ctx), ctx.conn.number)
        phases.finalize(ctx, 500)
        return None
    except LookupError as exc:
        resolver_lookup(ctx, *exc.args)     # 502, or the content handler again once resolved
        return None
    ctx.proxy_host = host_header
    return upstream, uri


def start_exchange(ctx, make, upstream, uri) -> None:
    """Start the exchange `make(ctx, upstream)` makes; `uri`: a variable proxy_pass's (None:
    the request's)."""
    ex = make(ctx, upstream)
    if uri is None:
        raw = ctx.request_uri
        ex.uri = raw if (raw[:1] == "/" and not ctx.internal) else \
            escape_uri(ctx.uri) + ("?" + ctx.args if ctx.args else "")
    else:
        ex.uri = uri
    ex.start()

