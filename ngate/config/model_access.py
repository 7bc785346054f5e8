"""The access phase's part of the frozen model (model.py re-exports it): a location's
AccessPlan (allow/deny, auth_basic, auth_request, satisfy) and its limit_except block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ngate.config.model import LocConf


@dataclass(frozen=True, slots=True)
class AuthBasic:
    """auth_basic with auth_basic_user_file: both set, as nginx requires."""
    realm: Any                       # Template; "off" renders as off
    user_file: Any                   # Template
    conf_prefix: str                 # a relative file name is relative to the config's directory


@dataclass(frozen=True, slots=True)
class AccessPlan:
    """The access phase of one LocConf (its `access` section, ngate/access), in nginx's handler
    order: access (allow/deny), then auth_basic, then auth_request; `satisfy_any` is `satisfy
    any`. Built only where some check is configured."""
    rules: tuple = ()                # allow/deny: (allow, network|None)
    auth_basic: AuthBasic | None = None
    satisfy_any: bool = False
    auth_delay: float = 0.0
    auth_request: str | None = None  # the subrequest's URI
    auth_request_set: tuple = ()     # (variable, Template evaluated in the subrequest)


@dataclass(frozen=True, slots=True)
class LimitExcept:
    """limit_except: a request whose method is not in `methods` uses `conf` (the block's own
    LocConf, merged from its location) instead of the location's, as nginx's
    ngx_http_update_location_config does."""
    methods: frozenset               # allowed methods; GET implies HEAD
    conf: "LocConf"
