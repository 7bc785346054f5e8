"""The proxy module's variables (nginx's ngx_http_proxy_module): $proxy_host, $proxy_port,
$proxy_add_x_forwarded_for.

Read by the variables registry (routing/variables.py) from the list in ngate/http/modules.py.
"""
from __future__ import annotations


def _proxy_host(ctx):
    return ctx.proxy_host


def _proxy_port(ctx):
    h = ctx.proxy_host
    if ":" in h:
        return h.rsplit(":", 1)[1]
    pp = ctx.conf.proxy.pass_ if ctx.loc else None
    return "443" if pp and pp.scheme == "https" else "80"


def _proxy_add_xff(ctx):
    """Every X-Forwarded-For line of the request, each followed by ", ", then $remote_addr."""
    if b"x-forwarded-for" not in ctx.hdr:
        return ctx.conn.remote_addr
    lines = [v.decode("latin-1") for n, v in ctx.headers if n.lower() == b"x-forwarded-for"]
    return ", ".join(lines) + ", " + ctx.conn.remote_addr


VARIABLES = {"proxy_host": _proxy_host, "proxy_port": _proxy_port,
             "proxy_add_x_forwarded_for": _proxy_add_xff}
