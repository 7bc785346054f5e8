"""Which module runs in which phase of a location, decided once when the config is compiled
(nginx's postconfiguration, where each module puts its handler into a phase).

`bind(conf)` returns the LocConf with its phase handlers and plans filled in:

  access_steps      PREACCESS then ACCESS, in nginx's module order: realip, limit_req and
                    limit_conn, then allow/deny + auth_basic + auth_request (access/phase.py)
  precontent_steps  try_files (static/try_files.py), then mirror (proxy/mirror.py)
  content           the content handler: empty_gif, fastcgi_pass under fastcgi_cache,
                    proxy_pass under proxy_cache, metrics, proxy_pass, fastcgi_pass, stub_status,
                    else the static modules
  upstream_plan     what proxy_pass / fastcgi_pass send upstream (proxy/proxy_request.py Plan,
                    proxy/fastcgi_proxy.py FastCGIPlan); uncached_plan: the same without the
                    cache's headers

The request path reads these fields; nothing registers itself by being imported and nothing is
looked up per request.

VARIABLE_MODULES lists the modules that define variables (their VARIABLES and PREFIXES tables);
routing/variables.py assembles its registry from it once, and templates bind the getters when
they are compiled.
"""
from __future__ import annotations

import dataclasses

from ngate import realip
from ngate.access import basic as auth_basic, phase as access
from ngate.cache import exchange as cache
from ngate.cache import fastcgi as fastcgi_cache
from ngate.fastcgi import variables as fastcgi_variables
from ngate.filters import variables as filter_variables
from ngate.http import conn_variables, phases, variables as core_variables
from ngate.http.respond import KA_YOUNG
from ngate.limits import phase as limits
from ngate.observability import metrics, stub_status
from ngate.proxy import fastcgi_proxy, http_proxy, mirror, proxy_request
from ngate.proxy import variables as proxy_variables
from ngate.routing import referer, secure_link, userid
from ngate.server import tls_variables
from ngate.static import empty_gif, handler as static, paths as static_paths
from ngate.upstream import variables as upstream_variables


# ---------------------------------------------------------------- variables

VARIABLE_MODULES = (
    core_variables,         # $uri, $args, $host, $request_*, $status, $http_*, $arg_*, times
    conn_variables,         # $remote_*, $server_addr/port, $connection*, $scheme, $proxy_protocol_*
    tls_variables,          # $ssl_*
    realip,                 # $realip_remote_addr/port
    limits,                 # $limit_req_status, $limit_conn_status
    auth_basic,             # $remote_user
    static_paths,           # $document_root, $realpath_root, $request_filename
    proxy_variables,        # $proxy_host, $proxy_port, $proxy_add_x_forwarded_for
    fastcgi_variables,      # $fastcgi_script_name, $fastcgi_path_info
    upstream_variables,     # $upstream_*, $upstream_http_*, $upstream_cookie_*
    filter_variables,       # $gzip_ratio, $sent_trailer_*, $date_local, $date_gmt
    referer,                # $invalid_referer
    secure_link,            # $secure_link, $secure_link_expires
    userid,                 # $uid_got, $uid_set, $uid_reset
    stub_status,            # $connections_*
)


# ---------------------------------------------------------------- access steps

def realip_step(ctx, conf) -> int:
    """PREACCESS: realip's run with the location's settings."""
    realip.apply(ctx, conf.realip)
    return 0


def limits_step(ctx, conf) -> int:
    """PREACCESS: limit_req, limit_conn (a delayed request resumes by itself)."""
    return limits.preaccess(ctx, conf.limits)


def access_step(ctx, conf) -> int:
    """ACCESS: allow/deny, auth_basic, auth_request (which resumes through access_done)."""
    return access.check(ctx, conf.access, phases.access_done)


def access_steps(conf) -> tuple:
    steps = []
    if conf.realip is not None:
        steps.append(realip_step)
    if conf.limits is not None:
        steps.append(limits_step)
    if conf.access is not None:
        steps.append(access_step)
    return tuple(steps)


def precontent_steps(conf) -> tuple:
    steps = []
    if conf.try_files is not None:
        steps.append(static.try_files_phase)
    if conf.mirror.uris:
        steps.append(mirror.phase)
    return tuple(steps)


def content_handler(conf):
    """The location's content handler (one per location, as nginx's clcf->handler)."""
    if conf.empty_gif:
        return empty_gif.empty_gif_handler
    if conf.no_upstream:
        return phases.no_upstream_handler
    if conf.fastcgi.pass_ is not None and conf.fastcgi.cache is not None:
        return fastcgi_cache.fastcgi_cache_handler
    if conf.proxy.pass_ is not None and conf.proxy.cache is not None:
        return cache.cache_handler
    if conf.metrics:
        return metrics.metrics_handler
    if conf.proxy.pass_ is not None:
        return http_proxy.proxy_handler
    if conf.fastcgi.pass_ is not None:
        return fastcgi_proxy.fastcgi_handler
    if conf.stub_status:
        return stub_status.stub_status_handler
    return static.content_handler(conf)       # static_handler, or its plain_file case


def bind(conf):
    """`conf` with its phase handlers and upstream plans (a new frozen LocConf)."""
    plan = uncached = None
    if conf.proxy.pass_ is not None:
        plan = proxy_request.Plan(conf)
        if conf.proxy.cache is not None:
            uncached = proxy_request.Plan(conf, cacheable=False)
    elif conf.fastcgi.pass_ is not None:
        plan = fastcgi_proxy.FastCGIPlan(conf)
    plain = conf.filters is None and not conf.headers.add_header and conf.userid is None \
        and not conf.charset.charset
    return dataclasses.replace(
        conf, content=content_handler(conf), access_steps=access_steps(conf),
        precontent_steps=precontent_steps(conf), upstream_plan=plan, uncached_plan=uncached,
        plain_head=plain, mime={},
        ka_full=conf.keepalive_timeout == 0 or "safari" in conf.keepalive_disable
        or conf.keepalive_time <= KA_YOUNG)
