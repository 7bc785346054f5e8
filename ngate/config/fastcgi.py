"""The FastCGI module's handlers with their own syntax (ngx_http_fastcgi_module):
fastcgi_pass (an Upstream group, implicit or named, or a Template), fastcgi_param and
fastcgi_split_path_info.
"""
from __future__ import annotations

from ngate.config.model import Upstream
from ngate.config.slots import header_set
from ngate.config.upstreams import addr_name, make_servers, split_host_port
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables


def fastcgi_pass(c, lv, st):
    """`host:port`, `unix:/path` or an upstream block's name -> the Upstream group; with
    variables, the Template (resolved per request by proxy/fastcgi_proxy.py)."""
    if "fastcgi.pass_" in lv.vals:
        raise ConfigError('"fastcgi_pass" directive is duplicate', st.where)
    addr = st.args[0]
    if has_variables(addr):
        lv.vals["fastcgi.pass_"] = c.template(addr, st.where)
        return
    if addr[:5].lower() == "unix:":
        key = ("unix", addr[5:])
        name = addr
    else:
        host, port = split_host_port(addr, "upstream", st.where)
        if not host:
            raise ConfigError(f'no host in upstream "{addr}"', st.where)
        if port is None:
            group = c.upstreams.get(host.lower())
            if group is None:
                raise ConfigError(f'no port in upstream "{addr}"', st.where)
            lv.vals["fastcgi.pass_"] = group
            return
        key = (host.lower(), port)
        name = addr_name(*key) if ":" not in host else f"[{host}]:{port}"
    group = c.implicit.get(key)
    if group is None:
        group = c.implicit[key] = Upstream(name=addr, servers=tuple(make_servers(name, st.where)),
                                           implicit=True, where=st.where)
    lv.vals["fastcgi.pass_"] = group


def fastcgi_param(c, lv, st):
    if_not_empty = len(st.args) == 3
    if if_not_empty and st.args[2] != "if_not_empty":
        raise ConfigError(f'invalid parameter "{st.args[2]}"', st.where)
    lv.vals.setdefault("fastcgi.param", []).append(
        header_set(c, st, st.args[0], st.args[1], if_not_empty=if_not_empty))


def split_path_info(c, lv, st):
    """Two captures, as nginx requires; a repeated directive replaces the earlier one."""
    rx = c.regex(st.args[0], st.where)
    if rx.groups != 2:
        raise ConfigError(f'pattern "{st.args[0]}" must have 2 captures', st.where)
    lv.vals["fastcgi.split_path_info"] = rx
