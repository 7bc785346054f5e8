"""The logs of the frozen model (model.py re-exports it): log_format, access_log and error_log
as observability/ writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LogFormat:
    name: str
    template: Any                 # Template (escape applied by the access log writer)
    escape: str = "default"       # default | json | none


@dataclass(frozen=True, slots=True)
class AccessLog:
    path: str                     # absolute path, or "off"
    format: LogFormat | None = None
    condition: Any = None         # Template for if=
    buffer: int = 0               # buffer=size: lines kept until it fills or flush= passes
    flush: float | None = None    # flush=time (seconds)
    path_template: Any = None     # Template when the path has variables (opened per line)
    syslog: "SyslogServer | None" = None    # `syslog:...` (path is then the text as written)


@dataclass(frozen=True, slots=True)
class ErrorLog:
    path: str                     # absolute path, "stderr", or `syslog:...` as written
    level: str = "error"
    syslog: "SyslogServer | None" = None


@dataclass(frozen=True, slots=True)
class SyslogServer:
    """A `syslog:` log target (ngx_syslog_peer_t): where to send and the header's fields.
    `severity` is the access log's (an error_log line takes its own level's)."""
    name: str                     # for messages: "127.0.0.1:514", "[::1]:514", "unix:/dev/log"
    family: int                   # socket.AF_INET, AF_INET6, AF_UNIX
    address: Any                  # connect()'s address: (host, port), (host, port, 0, 0), path
    facility: int = 23            # local7
    severity: int = 6             # info
    tag: str = "nginx"
    nohostname: bool = False


@dataclass(frozen=True, slots=True)
class LogConf:
    """The log module's section of a LocConf (`conf.log`, ngx_http_log_loc_conf_t)."""
    access_log: tuple = ()           # array of AccessLog; (): nginx's default (logs/access.log)
    slot: int = 0                    # its access_log list in Config.access_logs (0: default)
