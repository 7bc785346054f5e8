"""The log directives: error_log, log_format and access_log (ngx_errlog_module,
ngx_http_log_module) as the model's ErrorLog, LogFormat and AccessLog.
"""
from __future__ import annotations

from ngate.config.model import AccessLog, ErrorLog, LogFormat
from ngate.config.slots import no_effect_warning
from ngate.config.values import parse_size, parse_time
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables


LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")


def error_log(c, lv, st):
    path = st.args[0]
    level = st.args[1] if len(st.args) > 1 else "error"
    if level not in LOG_LEVELS:
        raise ConfigError(f'invalid log level "{level}"', st.where)
    if path != "stderr" and not path.startswith("syslog:"):
        path = c.path(path)
        c.open_files[path] = st.where
    lv.vals.setdefault("error_log", []).append(ErrorLog(path=path, level=level))


def log_format(c, lv, st):
    name, rest = st.args[0], st.args[1:]
    escape = "default"
    if rest and rest[0].startswith("escape="):
        escape = rest[0][7:]
        if escape not in ("default", "json", "none"):
            raise ConfigError(f'unknown log format escaping "{escape}"', st.where)
        rest = rest[1:]
    if name in c.log_formats:
        raise ConfigError(f'duplicate "log_format" name "{name}"', st.where)
    if not rest:
        raise ConfigError('invalid number of arguments in "log_format" directive', st.where)
    c.log_formats[name] = LogFormat(name, c.template("".join(rest), st.where), escape)


def access_log(c, lv, st):
    if st.args[0] == "off":
        if len(st.args) > 1:
            raise ConfigError(f'invalid parameter "{st.args[1]}"', st.where)
        lv.vals.setdefault("log.access_log", []).append(AccessLog(path="off"))
        return
    fmt = c.log_formats["combined"]
    params = st.args[1:]
    if params and "=" not in params[0]:
        fmt = c.log_formats.get(params[0])
        if fmt is None:
            raise ConfigError(f'unknown log format "{params[0]}"', st.where)
        params = params[1:]
    condition = None
    buffer, flush = 0, None
    for p in params:
        if p.startswith("if="):
            condition = c.template(p[3:], st.where)
        elif p.startswith("buffer="):
            buffer = _log_param(parse_size, st, p, 7)
        elif p.startswith("flush="):
            flush = _log_param(parse_time, st, p, 6)
        elif p.startswith("gzip"):
            buffer = buffer or 64 * 1024            # nginx: gzip implies a 64k buffer
            no_effect_warning(f'"gzip" parameter of "access_log" has no effect in ngate in '
                               f'{st.where}')
        else:
            raise ConfigError(f'invalid parameter "{p}"', st.where)
    if flush is not None and not buffer:
        raise ConfigError(f'no buffer is defined for access_log "{st.args[0]}"', st.where)
    path = st.args[0]
    path_template = None
    if not path.startswith("syslog:") and path != "/dev/stderr":
        path = c.path(path)
        if not has_variables(path):
            c.open_files[path] = st.where
        elif buffer:
            raise ConfigError("buffered logs cannot have variables in name", st.where)
        else:
            path_template = c.template(path, st.where)
    lv.vals.setdefault("log.access_log", []).append(
        AccessLog(path, fmt, condition, buffer, flush, path_template))


def _log_param(parse, st, p: str, skip: int):
    """buffer=size / flush=time of access_log, with nginx's message for a bad value."""
    try:
        value = parse(p[skip:])
    except ValueError:
        value = None
    if not value:
        raise ConfigError(f'invalid {p[:skip - 1]} value "{p}"', st.where)
    return value
