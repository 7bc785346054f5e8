"""The proxy module's section of a LocConf (`conf.proxy`, nginx's ngx_http_proxy_loc_conf_t):
filled by the proxy_* directives (config/proxy.py and directives.py rows), read by ngate/proxy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ngate.config.model_tls import ProxyTls
from ngate.config.model_upstream import ProxyRedirect, UpstreamSection


@dataclass(frozen=True, slots=True)
class ProxyConf(UpstreamSection):
    """proxy_* without the prefix; the common upstream part is UpstreamSection's. `pass_` is
    the compiled proxy_pass (ProxyPass)."""
    http_version: str = "1.0"
    set_header: tuple = ()                       # array of HeaderSet; defaults added by proxy/
    set_header_given: bool = False               # any proxy_set_header at some level
    redirect: ProxyRedirect = ProxyRedirect()
    method: Any = None                           # Template
    set_body: Any = None                         # Template
    cookie_domain: tuple = ()                    # array: rules of proxy/cookies.py
    cookie_path: tuple = ()                      # array
    cookie_flags: tuple = ()                     # array
    ssl: ProxyTls = ProxyTls()                   # proxy_ssl_* (config/tls.py)
