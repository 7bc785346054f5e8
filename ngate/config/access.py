"""The access-phase modules' value parsers: allow/deny (ngx_http_access_module),
satisfy, auth_basic_user_file (ngx_http_auth_basic_module) and auth_request_set
(ngx_http_auth_request_module).
"""
from __future__ import annotations

import os

from ngate.config.rewrite import CHANGEABLE_VARIABLES
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables, registry


def access_rule(c, st):
    """allow/deny: (allow?, network or None for "all"); unix: is matched as "unix:"."""
    import ipaddress
    allow = st.directive == "allow"
    arg = st.args[0]
    if arg == "all":
        return (allow, None)
    if arg == "unix:":
        return (allow, "unix:")
    try:
        return (allow, ipaddress.ip_network(arg, strict=False))
    except ValueError:
        raise ConfigError(f'invalid parameter "{arg}"', st.where) from None


def auth_basic_user_file(c, st) -> tuple:
    """(Template, conf prefix): a relative name is relative to the main config file's
    directory (nginx's conf_prefix), also when it comes from variables."""
    name = st.args[0]
    if not has_variables(name) and not name.startswith("/"):
        name = os.path.join(c.conf_dir, name)
    return (c.template(name, st.where), c.conf_dir)


def auth_request_set(c, st) -> tuple:
    var = st.args[0]
    if not var.startswith("$") or len(var) < 2:
        raise ConfigError(f'invalid variable name "{var}"', st.where)
    name = var[1:]
    if name in registry() and name not in CHANGEABLE_VARIABLES:
        raise ConfigError(f'the duplicate "{name}" variable', st.where)
    return (name, c.template(st.args[1], st.where))


def satisfy(c, st) -> str:
    if st.args[0] not in ("all", "any"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]
