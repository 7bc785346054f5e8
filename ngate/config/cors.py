"""`cors`, an ngate extension: the CORS response headers (as `add_header ... always`)
and a 204 answer to preflight OPTIONS requests, compiled into the level's add_header items and
rewrite ops.
"""
from __future__ import annotations

from ngate.config.model import HeaderSet, ReturnOp
from ngate.errors import ConfigError


CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def cors(c, lv, st):
    """`cors * | <origin>... | $var [credentials]`: the usual CORS headers on every response (as
    `add_header ... always`) and a 204 answer to preflight OPTIONS requests.

    Literal origins are an allow-list: a request whose Origin is one of them gets it back in
    Access-Control-Allow-Origin (with Access-Control-Allow-Credentials under `credentials`);
    any other origin gets neither. `*` and a variable are sent as they are; with `credentials`
    they reflect every origin, so -t warns about them."""
    from ngate.config.model import IfCondition, IfOp
    from ngate.observability import error_log
    args = list(st.args)
    credentials = args[-1] == "credentials"
    if credentials:
        args.pop()
    if not args:
        raise ConfigError('invalid number of arguments in "cors" directive', st.where)
    for arg in args:
        if arg == "credentials" or (len(args) > 1 and (arg == "*" or "$" in arg)):
            raise ConfigError(f'invalid parameter "{arg}"', st.where)
    origin = args[0]
    reflecting = origin == "*" or "$" in origin
    if credentials and reflecting:
        error_log.warn(f'"cors {origin} credentials" lets every web site read responses with '
                       f"the user's credentials; list the allowed origins instead in {st.where}")
    if reflecting:
        allow = c.template("$http_origin" if credentials and origin == "*" else origin, st.where)
        allow_credentials = c.template("true") if credentials else None
    else:
        allow, allow_credentials = _cors_allow_list(c, frozenset(args), credentials)
    headers = [("Access-Control-Allow-Origin", allow)]
    if origin != "*" or credentials:
        headers.append(("Vary", c.template("Origin")))
    if allow_credentials is not None:
        headers.append(("Access-Control-Allow-Credentials", allow_credentials))
    headers += [("Access-Control-Allow-Methods", c.template(CORS_METHODS)),
                ("Access-Control-Allow-Headers",
                 c.template("$http_access_control_request_headers")),
                ("Access-Control-Max-Age", c.template("86400"))]
    items = lv.vals.setdefault("headers.add_header", [])
    for name, value in headers:
        items.append(HeaderSet(name, name.lower().encode("latin-1"), value, always=True))
    if lv.ctx in ("server", "location"):
        preflight = IfCondition("=", c.template("$request_method"), c.template("OPTIONS"))
        lv.ops.insert(0, IfOp(preflight, (ReturnOp(204, None, st.where),), None, st.where))


def _cors_allow_list(c, origins: frozenset, credentials: bool):
    """Templates for Access-Control-Allow-Origin and -Credentials that render only for a
    request whose Origin is in `origins` (an empty value is not sent, as add_header)."""
    from ngate.routing.variables import Template
    request_origin = c.template("$http_origin")

    def allowed(ctx):
        value = request_origin.render(ctx)
        return value if value in origins else None

    def allowed_credentials(ctx):
        return "true" if request_origin.render(ctx) in origins else None

    text = " ".join(sorted(origins))
    allow = Template(f"<origin if one of: {text}>", (allowed,))
    if not credentials:
        return allow, None
    return allow, Template(f"<true if Origin is one of: {text}>", (allowed_credentials,))
