"""nginx's access phase: the access module (allow/deny), then auth_basic, then auth_request,
under `satisfy`.

nginx runs the phase's handlers in that order (ngx_http_core_access_phase). Each answers
DECLINED (nothing to say), OK, or a status:

  satisfy all  (default) every handler must not refuse: the first 403/401/500 is the answer;
               the access module logs "access forbidden by rule" itself.
  satisfy any  the first OK lets the request in (a WWW-Authenticate already prepared is dropped);
               403 and 401 are remembered (401 wins) and answered after the last handler
               (ngx_http_core_post_access_phase, which logs "access forbidden by rule" for 403);
               any other status is the answer at once.

auth_request runs a subrequest (proxy/subrequest.py) and answers later: check() returns PENDING
and the verdict goes to `resume(ctx, status)`. Its subrequest's 2xx lets the request in, 401
(with the WWW-Authenticate its upstream sent) and 403 refuse it, anything else is a 500 ("auth
request unexpected status"); auth_request_set variables are evaluated in the subrequest.

A 401 waits `auth_delay` before it is sent. The plan is compiled per LocConf (access_plan) and is
None where nothing is checked, so such locations pay nothing.
"""
from __future__ import annotations

from ngate.access import basic
from ngate.access.rules import match_rules
from ngate.config.model import AccessPlan, AuthBasic
from ngate.http.rewrite import set_variable
from ngate.observability import error_log
from ngate.proxy import subrequest

ALLOWED = 0
PENDING = -1


def access_plan(fields: dict) -> AccessPlan | None:
    """LocConf.access: the AccessPlan of a merged level's values (the keys of allow/deny,
    auth_basic*, auth_request*, satisfy, auth_delay), or None when the location checks
    nothing."""
    rules = fields.get("access_rules") or ()
    auth = None
    realm, user_file = fields.get("auth_basic"), fields.get("auth_basic_user_file")
    if realm is not None and user_file is not None:
        auth = AuthBasic(realm=realm, user_file=user_file[0], conf_prefix=user_file[1])
    auth_request = fields.get("auth_request")
    if auth_request == "off":
        auth_request = None
    if not rules and auth is None and auth_request is None:
        return None
    return AccessPlan(rules=tuple(rules), auth_basic=auth,
                      satisfy_any=fields.get("satisfy") == "any",
                      auth_delay=fields.get("auth_delay") or 0.0,
                      auth_request=auth_request,
                      auth_request_set=tuple(fields.get("auth_request_set") or ()))


def check(ctx, plan: AccessPlan, resume) -> int:
    """ALLOWED, the status to finalize the request with, or PENDING (then `resume(ctx, status)`
    gets ALLOWED or the status)."""
    if plan.satisfy_any:
        return _satisfy_any(ctx, plan, resume)
    if plan.rules and match_rules(ctx, plan.rules) is False:
        error_log.error("access forbidden by rule" + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return 403
    if plan.auth_basic is not None:
        rc = basic.check(ctx, plan.auth_basic)
        if rc > basic.OK:
            return rc
    if plan.auth_request is not None:
        return _auth_request(ctx, plan, 0, resume)
    return ALLOWED


def _satisfy_any(ctx, plan: AccessPlan, resume) -> int:
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
    if plan.auth_request is not None:
        return _auth_request(ctx, plan, code, resume)
    return _post_access(ctx, code)


def _post_access(ctx, code: int) -> int:
    """satisfy any, after the last handler: the remembered refusal (nginx's post-access phase)."""
    if code == 403:
        error_log.error("access forbidden by rule" + error_log.request_suffix(ctx),
                        ctx.conn.number)
    return code


def _auth_request(ctx, plan: AccessPlan, code: int, resume) -> int:
    """Start the subrequest; its verdict is combined with `code` (satisfy any) and resumed."""

    def done(sub, status: int, headers) -> None:
        if ctx.logged:
            return                  # the client left
        rc = _auth_request_result(ctx, plan, sub, status)
        if not plan.satisfy_any:
            return resume(ctx, rc)
        if rc == ALLOWED:
            return resume(ctx, _let_in(ctx))
        if rc == 401 or rc == 403:
            return resume(ctx, _post_access(ctx, code if code == 401 else rc))
        resume(ctx, rc)

    subrequest.start(ctx, plan.auth_request, done)
    return PENDING


def _auth_request_result(ctx, plan: AccessPlan, sub, status: int) -> int:
    """nginx's ngx_http_auth_request_handler once the subrequest is done."""
    if sub is not None:
        for name, value in plan.auth_request_set:
            set_variable(ctx, name, value.render(sub))
    if status == 403:
        return 403
    if status == 401:
        challenge = _upstream_challenge(sub)
        if challenge is not None:
            ctx.www_authenticate = challenge
            ctx.rare = True     # (http/context.py _GUARDED)
        return 401
    if 200 <= status < 300:
        return ALLOWED
    error_log.error(f"auth request unexpected status: {status}" + error_log.request_suffix(ctx),
                    ctx.conn.number)
    return 500


def _upstream_challenge(sub) -> str | None:
    """The first WWW-Authenticate of the subrequest's upstream response (nginx copies
    sr->upstream->headers_in.www_authenticate)."""
    for name, value in (sub.upstream_headers if sub is not None else None) or ():
        if name.lower() == b"www-authenticate":
            return value.decode("latin-1")
    return None


def _let_in(ctx) -> int:
    ctx.www_authenticate = None
    return ALLOWED
