"""nginx's access phase: the access module (allow/deny), then auth_basic, under `satisfy`.

nginx runs the phase's handlers in that order (ngx_http_core_access_phase). Each answers
DECLINED (nothing to say), OK, or a status:

  satisfy all  (default) every handler must not refuse: the first 403/401/500 is the answer;
               the access module logs "access forbidden by rule" itself.
  satisfy any  the first OK lets the request in (a WWW-Authenticate already prepared is dropped);
               403 and 401 are remembered (401 wins) and answered after the last handler
               (ngx_http_core_post_access_phase, which logs "access forbidden by rule" for 403);
               any other status is the answer at once.

A 401 waits `auth_delay` before it is sent. The plan is compiled per LocConf (access_plan) and is
None where nothing is checked, so such locations pay nothing.
"""
from __future__ import annotations

from ngate.access import basic
from ngate.access.rules import match_rules
from ngate.config.model import AccessPlan, AuthBasic
from ngate.observability import error_log

ALLOWED = 0


def access_plan(fields: dict) -> AccessPlan | None:
    """The AccessPlan of a LocConf's fields, or None when the location checks nothing."""
    rules = fields.get("access_rules") or ()
    auth = None
    realm, user_file = fields.get("auth_basic"), fields.get("auth_basic_user_file")
    if realm is not None and user_file is not None:
        auth = AuthBasic(realm=realm, user_file=user_file[0], conf_prefix=user_file[1])
    if not rules and auth is None:
        return None
    return AccessPlan(rules=tuple(rules), auth_basic=auth,
                      satisfy_any=fields.get("satisfy") == "any",
                      auth_delay=fields.get("auth_delay") or 0.0)


def check(ctx, plan: AccessPlan) -> int:
    """ALLOWED, or the status to finalize the request with."""
    if plan.satisfy_any:
        return _satisfy_any(ctx, plan)
    if plan.rules and match_rules(ctx, plan.rules) is False:
        error_log.error("access forbidden by rule" + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return 403
    if plan.auth_basic is not None:
        rc = basic.check(ctx, plan.auth_basic)
        if rc > basic.OK:
            return rc
    return ALLOWED


def _satisfy_any(ctx, plan: AccessPlan) -> int:
    code = 0
    if plan.rules:
        verdict = match_rules(ctx, plan.rules)
        if verdict is True:
            return _let_in(ctx)
        if verdict is False:
            code = 403
    if plan.auth_basic is not None:
        rc = basic.check(ctx, plan.auth_basic)
        if rc == basic.OK:
            return _let_in(ctx)
        if rc == 401 or rc == 403:
            if code != 401:
                code = rc
        elif rc != basic.DECLINED:
            return rc
    if code == 403:
        error_log.error("access forbidden by rule" + error_log.request_suffix(ctx),
                        ctx.conn.number)
    return code


def _let_in(ctx) -> int:
    ctx.www_authenticate = None
    return ALLOWED
