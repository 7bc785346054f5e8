"""The log directives: error_log, log_format and access_log (ngx_errlog_module,
ngx_http_log_module) as the model's ErrorLog, LogFormat and AccessLog; a `syslog:` target
(ngx_syslog_process_conf) as a SyslogServer.
"""
from __future__ import annotations

import ipaddress
import socket

from ngate.config.model import AccessLog, ErrorLog, LogFormat
from ngate.config.model_logs import SyslogServer
from ngate.config.slots import no_effect_warning
from ngate.config.values import parse_number, parse_size, parse_time
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables


LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")


def error_log(c, lv, st):
    path = st.args[0]
    level = st.args[1] if len(st.args) > 1 else "error"
    syslog = None
    if path.startswith("syslog:"):          # (nginx reads the target before the level)
        syslog = syslog_server(path, st.where)
    if level not in LOG_LEVELS:
        raise ConfigError(f'invalid log level "{level}"', st.where)
    if path != "stderr" and syslog is None:
        path = c.path(path)
        c.open_files[path] = st.where
    lv.vals.setdefault("error_log", []).append(ErrorLog(path=path, level=level, syslog=syslog))


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
    """ngx_http_log_set_log: the target (a `syslog:` one parsed first), then the format (the
    second argument whenever there is one), then buffer=, flush=, gzip[=level], if=."""
    if st.args[0] == "off":
        if len(st.args) > 1:
            raise ConfigError(f'invalid parameter "{st.args[1]}"', st.where)
        lv.vals.setdefault("log.access_log", []).append(AccessLog(path="off"))
        return
    path = st.args[0]
    syslog = syslog_server(path, st.where) if path.startswith("syslog:") else None
    fmt = c.log_formats["combined"]
    params = st.args[1:]
    if params:
        fmt = c.log_formats.get(params[0])
        if fmt is None:
            raise ConfigError(f'unknown log format "{params[0]}"', st.where)
        params = params[1:]
    condition = None
    buffer, flush = 0, None
    for p in params:
        if p.startswith("buffer="):
            buffer = _log_param(parse_size, st, p, 7, "buffer size")
        elif p.startswith("flush="):
            flush = _log_param(parse_time, st, p, 6, "flush time")
        elif p == "gzip" or p.startswith("gzip="):
            buffer = buffer or 64 * 1024            # nginx: gzip implies a 64k buffer
            level = p[5:]
            if p != "gzip" and not (is_digits(level) and 1 <= int(level) <= 9):
                raise ConfigError(f'invalid compression level "{level}"', st.where)
            no_effect_warning(f'"gzip" parameter of "access_log" has no effect in ngate in '
                               f'{st.where}')
        elif p.startswith("if="):
            condition = c.template(p[3:], st.where)
        else:
            raise ConfigError(f'invalid parameter "{p}"', st.where)
    if flush is not None and not buffer:
        raise ConfigError(f'no buffer is defined for access_log "{st.args[0]}"', st.where)
    path_template = None
    if syslog is not None:
        if buffer:
            raise ConfigError("logs to syslog cannot be buffered", st.where)
    elif path != "/dev/stderr":
        path = c.path(path)
        if not has_variables(path):
            c.open_files[path] = st.where
        elif buffer:
            raise ConfigError("buffered logs cannot have variables in name", st.where)
        else:
            path_template = c.template(path, st.where)
    lv.vals.setdefault("log.access_log", []).append(
        AccessLog(path, fmt, condition, buffer, flush, path_template, syslog))


def _log_param(parse, st, p: str, skip: int, what: str):
    """buffer=size / flush=time of access_log, with nginx's message for a bad value."""
    try:
        value = parse(p[skip:])
    except ValueError:
        value = None
    if not value:
        raise ConfigError(f'invalid {what} "{p[skip:]}"', st.where)
    return value


def is_digits(text: str) -> bool:
    try:
        parse_number(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- syslog: targets

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp",
              "clock", "authpriv", "ftp", "ntp", "audit", "alert", "cron", "local0",
              "local1", "local2", "local3", "local4", "local5", "local6", "local7")
# note 'error/warn' as in nginx.conf, not syslog's 'err/warning'
SEVERITIES = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
SUN_PATH_MAX = 107          # sizeof(sockaddr_un.sun_path) - 1


def syslog_server(value: str, where) -> SyslogServer:
    """`syslog:server=addr[,facility=f][,severity=s][,tag=t][,nohostname]` as
    ngx_syslog_parse_args reads it: comma-separated, each parameter once, in any order;
    then ngx_syslog_process_conf's defaults (facility local7, severity info, tag nginx)."""
    server = facility = severity = tag = None
    nohostname = False
    for p in value[7:].split(","):
        if p.startswith("server="):
            if server is not None:
                raise ConfigError('duplicate syslog "server"', where)
            server = _syslog_address(p[7:], where)
        elif p.startswith("facility="):
            if facility is not None:
                raise ConfigError('duplicate syslog "facility"', where)
            if p[9:] not in FACILITIES:
                raise ConfigError(f'unknown syslog facility "{p[9:]}"', where)
            facility = FACILITIES.index(p[9:])
        elif p.startswith("severity="):
            if severity is not None:
                raise ConfigError('duplicate syslog "severity"', where)
            if p[9:] not in SEVERITIES:
                raise ConfigError(f'unknown syslog severity "{p[9:]}"', where)
            severity = SEVERITIES.index(p[9:])
        elif p.startswith("tag="):
            if tag is not None:
                raise ConfigError('duplicate syslog "tag"', where)
            tag = p[4:]
            if len(tag.encode()) > 32:      # RFC 3164: at most 32 alphanumeric characters
                raise ConfigError("syslog tag length exceeds 32", where)
            if any(not (ch.isascii() and (ch.isalnum() or ch == "_")) for ch in tag):
                raise ConfigError('syslog "tag" only allows alphanumeric characters and '
                                  'underscore', where)
        elif p == "nohostname":
            nohostname = True
        else:
            raise ConfigError(f'unknown syslog parameter "{p}"', where)
    if server is None:
        raise ConfigError("no syslog server specified", where)
    name, family, address = server
    return SyslogServer(name, family, address, 23 if facility is None else facility,
                        6 if severity is None else severity,
                        "nginx" if tag is None else tag, nohostname)


def _syslog_address(url: str, where) -> tuple:
    """server=: ngx_parse_url with default port 514, no URI part, names resolved now (the
    first IPv4 address, else the first IPv6 one) -> (name, family, address)."""
    def fail(err: str):
        return ConfigError(f'{err} in syslog server "{url}"', where)
    if url[:5].lower() == "unix:":
        path = url[5:]
        if not path:
            raise fail("no path in the unix domain socket")
        if len(path.encode()) > SUN_PATH_MAX:
            raise fail("too long path in the unix domain socket")
        return url, socket.AF_UNIX, path
    if url.startswith("["):
        end = url.find("]")
        if end < 0 or "/" in url[end:] or "?" in url[end:]:
            raise fail("invalid host")
        rest = url[end + 1:]
        if rest and rest[0] != ":":
            raise fail("invalid host")
        port = _syslog_port(rest[1:], fail) if rest else 514
        host = url[1:end]
        if not host:
            raise fail("no host")
        try:
            addr = ipaddress.IPv6Address(host)
        except ValueError:
            raise fail("invalid IPv6 address") from None
        return f"[{addr}]:{port}", socket.AF_INET6, (str(addr), port, 0, 0)
    if "/" in url or "?" in url:
        raise fail("invalid host")
    host, colon, port_text = url.partition(":")
    port = _syslog_port(port_text, fail) if colon else 514
    if not host:
        raise fail("no host")
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_ADDRCONFIG)
    except (OSError, UnicodeError, ValueError):
        raise fail("host not found") from None
    v4 = [i[4][0] for i in infos if i[0] == socket.AF_INET]
    if v4:
        return f"{v4[0]}:{port}", socket.AF_INET, (v4[0], port)
    v6 = [i[4][0] for i in infos if i[0] == socket.AF_INET6]
    if not v6:
        raise fail("host not found")
    return f"[{v6[0]}]:{port}", socket.AF_INET6, (v6[0], port, 0, 0)


def _syslog_port(text: str, fail) -> int:
    try:
        port = parse_number(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise fail("invalid port")
    return port
