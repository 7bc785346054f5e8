"""ngate's command line: nginx's options, parsed the way nginx parses them, plus ngate's verbs.

    ngate [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename] [-g directives]
    ngate <verb> [args...]        (VERBS: `ngate demo`, `ngate explain`)

Flags may be grouped (`-tq`); an option's value may be attached (`-cfile`) or follow (`-c file`).
Messages go to stderr as nginx writes them, with "ngate:" as the program name; only -T writes
to stdout (the configuration dump). The running server never writes to stdout.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
from dataclasses import dataclass
from typing import Callable

from ngate import NGINX_VERSION, __version__
from ngate.config.loader import DEFAULT_CONF, dump_config, load_config
from ngate.errors import ConfigError
from ngate.observability import error_log

PROG = "ngate"

SIGNALS = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT,
           "reopen": signal.SIGUSR1, "reload": signal.SIGHUP}


@dataclass
class Verb:
    run: Callable[[list[str]], int]   # argv after the verb -> exit code
    help: str


class Lazy:
    """`module.function(argv)`, the module imported only when its verb is used (plain `ngate`
    does not load the demo or explain code)."""
    __slots__ = ("module", "function")

    def __init__(self, module: str, function: str) -> None:
        self.module = module
        self.function = function

    def __call__(self, argv: list[str]) -> int:
        return getattr(importlib.import_module(self.module), self.function)(argv)


# `ngate <verb> ...`: the verbs, name -> the module and function that run them
VERBS: dict[str, Verb] = {
    "demo": Verb(Lazy("ngate.demo", "run"),
                 "run the WebSocket chat demo (ngate on :8080, chat backend on :8888)"),
    "explain": Verb(Lazy("ngate.explain", "run"),
                    "how the config routes a request, and why (ngate explain -h)"),
}


class UsageError(Exception):
    pass


@dataclass
class Options:
    help: bool = False
    version: bool = False
    configure: bool = False
    test: bool = False
    dump: bool = False
    quiet: bool = False
    signal: str | None = None
    prefix: str | None = None
    error_log: str | None = None
    conf_file: str | None = None
    directives: str = ""


_FLAGS = {"?": ("help", "version"), "h": ("help", "version"), "v": ("version",),
          "V": ("version", "configure"), "t": ("test",), "T": ("test", "dump"), "q": ("quiet",)}
_LONG = {"--help": ("help", "version"), "--version": ("version",)}
_VALUED = {"p": ("prefix", "directory name"), "e": ("error_log", "file name"),
           "c": ("conf_file", "file name"), "g": ("directives", "parameter"),
           "s": ("signal", "parameter")}


def parse_args(argv: list[str]) -> Options:
    """nginx's ngx_get_options(): raises UsageError with nginx's message."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _LONG:            # ngate's additions: what users type first
            for name in _LONG[arg]:
                setattr(opts, name, True)
            i += 1
            continue
        if not arg.startswith("-"):
            raise UsageError(f'invalid option: "{arg}"')
        pos = 1
        while pos < len(arg):
            ch = arg[pos]
            pos += 1
            if ch in _FLAGS:
                for name in _FLAGS[ch]:
                    setattr(opts, name, True)
                continue
            if ch not in _VALUED:
                raise UsageError(f'invalid option: "{ch}"')
            name, what = _VALUED[ch]
            if pos < len(arg):
                value = arg[pos:]
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UsageError(f'option "-{ch}" requires {what}')
            if ch == "s" and value not in SIGNALS:
                raise UsageError(f'invalid option: "-s {value}"')
            setattr(opts, name, value)
            break
        i += 1
    return opts


# ---------------------------------------------------------------- output

def say(text: str) -> None:
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()


def version_line() -> str:
    return f"{PROG} version: {PROG}/{__version__} (nginx/{NGINX_VERSION} compatible)"


def build_info() -> str:
    import httptools
    import uvloop
    py = sys.version.split()[0]
    from ngate.config.modules import build_lines
    return "\n".join([f"built with Python {py} ({sys.implementation.name}), "
                      f"uvloop {uvloop.__version__}, httptools {httptools.__version__}",
                      *build_lines()])


def usage() -> str:
    lines = [
        f"Usage: {PROG} [-?hvVtTq] [-s signal] [-p prefix]",
        "             [-e filename] [-c filename] [-g directives]",
        f"       {PROG} <verb> [args...]",
        "",
        "Options:",
        "  -?,-h,--help  : this help",
        "  -v            : show version and exit",
        "  -V            : show version and build information then exit",
        "  -t            : test configuration and exit",
        "  -T            : test configuration, dump it and exit",
        "  -q            : suppress non-error messages during configuration testing",
        "  -s signal     : send signal to a master process: stop, quit, reopen, reload",
        "  -p prefix     : set prefix path (default: the current directory)",
        "  -e filename   : set error log file (default: stderr)",
        f"  -c filename   : set configuration file (default: {DEFAULT_CONF})",
        "  -g directives : set global directives out of configuration file",
        "",
    ]
    if VERBS:
        lines += ["", "Verbs:"]
        lines += [f"  {name:<13} : {verb.help}" for name, verb in sorted(VERBS.items())]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- paths and config

def resolve_paths(opts: Options) -> tuple[str, str]:
    """(prefix, conf_file) as nginx resolves them: a relative -c is relative to the prefix."""
    prefix = os.path.abspath(opts.prefix) if opts.prefix else os.getcwd()
    if opts.conf_file is None:
        return prefix, DEFAULT_CONF
    return prefix, os.path.normpath(os.path.join(prefix, opts.conf_file))


def make_loader(conf_file: str, prefix: str, directives: str):
    """() -> Config for start, -t, -s and every reload; any failure is a ConfigError.

    As nginx's ngx_init_cycle, the log files are opened (created) here, so -t and a reload
    refuse a log that cannot be written."""
    def load():
        config = load_config(conf_file, prefix=prefix, global_directives=directives)
        open_log_files(config.open_files)
        return config
    return load


def open_log_files(paths) -> None:
    """Open each log file for appending, creating it, as nginx does at load."""
    for path in paths:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as err:
            raise ConfigError(f'open() "{path}" failed {error_log.os_error(err)}') from None
        except ValueError as err:       # a NUL byte in the path
            raise ConfigError(f'open() "{path}" failed ({err})') from None


def test_config(opts: Options, conf_file: str, load) -> int:
    """-t / -T."""
    try:
        config = load()
    except ConfigError as err:
        error_log.emerg(str(err))
        say(f"configuration file {conf_file} test failed")
        return 1
    if not opts.quiet:
        say(f"the configuration file {conf_file} syntax is ok")
        say(f"configuration file {conf_file} test is successful")
    if opts.dump:
        sys.stdout.write(dump_config(config))
        sys.stdout.flush()
    return 0


def send_signal(name: str, load) -> int:
    """-s: signal the master whose pid is in the configuration's pid file."""
    try:
        config = load()
    except ConfigError as err:
        error_log.emerg(str(err))
        return 1
    error_log.notice("signal process started")
    path = config.main.pid
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        error_log.error(f'open() "{path}" failed {error_log.os_error(err)}')
        return 1
    text = raw.rstrip(b"\r\n").decode("latin-1")
    if not text.isdigit() or int(text) <= 0:
        error_log.error(f'invalid PID number "{text}" in "{path}"')
        return 1
    pid, signo = int(text), SIGNALS[name]
    try:
        os.kill(pid, signo)
    except OSError as err:
        error_log.alert(f"kill({pid}, {int(signo)}) failed {error_log.os_error(err)}")
        return 1
    return 0


def serve(startup_log: str | None, load) -> int:
    try:
        config = load()
    except ConfigError as err:
        error_log.emerg(str(err))
        return 1
    from ngate.supervisor.master import Master
    return Master(config, load, startup_log).run()


# ---------------------------------------------------------------- entry point

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in VERBS:
        return VERBS[argv[0]].run(argv[1:])
    try:
        opts = parse_args(argv)
    except UsageError as err:
        say(str(err))
        return 1
    if opts.version:
        sys.stderr.write(version_line() + "\n")
        if opts.help:
            sys.stderr.write(usage())
        elif opts.configure:
            sys.stderr.write(build_info() + "\n")
        sys.stderr.flush()
        if not opts.test:
            return 0
    prefix, conf_file = resolve_paths(opts)
    startup_log = error_log.startup_path(opts.error_log, prefix)
    try:
        error_log.use_startup_log(startup_log)
    except OSError as err:
        say(f'[alert] could not open error log file: open() "{err.filename}" failed '
            f"{error_log.os_error(err)}")
        error_log.use_startup_log(None)
    load = make_loader(conf_file, prefix, opts.directives)
    if opts.test:
        return test_config(opts, conf_file, load)
    if opts.signal:
        return send_signal(opts.signal, load)
    return serve(startup_log, load)
