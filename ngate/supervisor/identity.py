"""The workers' identity: nginx's `user` directive.

A master started as root runs its workers as the configured user (default `nobody`, with the
group `nobody`, or `nogroup` where there is none, as nginx's configure picks). Names are resolved
when the config is loaded (`resolve`, a ConfigError with file:line for an unknown one). A worker
switches (`switch`) once everything it needs as root is open: the listening sockets and the
TLS keys come from the master, and the worker opens its access logs first (`open_logs`). A master
not running as root ignores `user` with nginx's warning; `master_process off` keeps root too,
as nginx's single-process mode does.

Files written later stay usable as nginx keeps them: on USR1 the master reopens the log files,
creating missing ones, and hands them to the worker user (`hand_over_logs`) before the workers
reopen them by name.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import tempfile

from ngate.errors import ConfigError
from ngate.observability import error_log

DEFAULT_USER = "nobody"
NOT_IN_WORKERS = ("ngate.demo", "ngate.explain", "ngate.cli")
_IMPORT_RE = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w.]+))", re.M)
FATAL_EXIT = 2


def default_group() -> str:
    """nginx's configure: group `nobody` if the system has one, else `nogroup`."""
    try:
        grp.getgrnam("nobody")
        return "nobody"
    except KeyError:
        return "nogroup"


def resolve(user: str, group: str | None, where=None) -> tuple[int, int]:
    """(uid, gid) of `user name [group]`; without a group, the group named as the user."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f'getpwnam("{user}") failed', where) from None
    group = group or user
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f'getgrnam("{group}") failed', where) from None
    return uid, gid


def switch(main) -> None:
    """Become the workers' user (root only; nginx's ngx_worker_process_init). A failure is fatal
    for the worker: nginx exits it with code 2 and the master does not respawn it."""
    if main.uid is None or os.geteuid() != 0:
        return
    try:
        os.setgid(main.gid)
    except OSError as err:
        _fatal(f"setgid({main.gid}) failed {error_log.os_error(err)}")
    try:
        os.initgroups(main.user, main.gid)
    except OSError as err:
        _fatal(f'initgroups({main.user}, {main.gid}) failed {error_log.os_error(err)}')
    try:
        os.setuid(main.uid)
    except OSError as err:
        _fatal(f"setuid({main.uid}) failed {error_log.os_error(err)}")
    tempfile.tempdir = None      # the temp directory is chosen again, writable by the new user


def preload_modules() -> None:
    """Import, while still root, every module a worker may import later: once it is `nobody`
    it may not be allowed to read Python's own files (an interpreter under /root). That is
    every ngate module, every module they import inside functions, and the codecs the request
    path names. Done once in the master, so each fork inherits it."""
    import importlib
    import importlib.util
    import pkgutil

    import ngate
    names = {"encodings.latin_1", "encodings.ascii", "encodings.utf_8", "encodings.idna"}
    for info in pkgutil.walk_packages(ngate.__path__, "ngate."):
        if info.name.endswith("__main__") or info.name.startswith(NOT_IN_WORKERS):
            continue            # the command line and its verbs
        names.add(info.name)
        spec = importlib.util.find_spec(info.name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as f:
            names.update(a or b for a, b in _IMPORT_RE.findall(f.read()))
    for name in sorted(n for n in names if n != "__main__" and not n.startswith(NOT_IN_WORKERS)):
        try:
            importlib.import_module(name)
        except Exception:       # an optional module (e.g. one only some platforms have)
            pass


def _fatal(message: str) -> None:
    error_log.emerg(message)
    os._exit(FATAL_EXIT)


def log_paths(config) -> list[str]:
    """Every access log file the config names (the default one included) and the main error
    log files: what the master opens for the workers in nginx."""
    from ngate.observability.access_log import config_paths
    paths = [e.path for e in config.main.error_log if e.path != "stderr"
             and not e.path.startswith("syslog:")]
    return paths + [p for p in config_paths(config) if p not in paths]


def hand_over_logs(config) -> None:
    """USR1 in the master, before the workers reopen: each log file (created if missing) is
    given to the worker user and made readable and writable by it (ngx_reopen_files)."""
    main = config.main
    if main.uid is None or os.geteuid() != 0:
        return
    for path in log_paths(config):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            error_log.emerg(f'open() "{path}" failed {error_log.os_error(err)}')
            continue
        try:
            st = os.fstat(fd)
            if st.st_uid != main.uid:
                _try(os.fchown, fd, main.uid, -1, what=f'chown("{path}", {main.uid})')
            if st.st_mode & 0o600 != 0o600:
                _try(os.fchmod, fd, st.st_mode | 0o600, what=f'chmod() "{path}"')
        finally:
            os.close(fd)


def create_paths(config) -> bool:
    """ngx_create_paths: each client_body_temp_path directory is made (0700) when missing and,
    as root, given to the worker user; False after an [emerg] (nginx does not start)."""
    main = config.main
    for path, _levels in config.temp_paths:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as err:
            error_log.emerg(f'mkdir() "{path}" failed {error_log.os_error(err)}')
            return False
        if main.uid is None or os.geteuid() != 0:
            continue
        try:
            st = os.stat(path)
            if st.st_uid != main.uid:
                os.chown(path, main.uid, -1)
            if st.st_mode & 0o700 != 0o700:
                os.chmod(path, st.st_mode | 0o700)
        except OSError as err:
            error_log.emerg(f'chown("{path}", {main.uid}) failed {error_log.os_error(err)}')
            return False
    return True


def _try(func, *args, what: str) -> None:
    try:
        func(*args)
    except OSError as err:
        error_log.emerg(f"{what} failed {error_log.os_error(err)}")
