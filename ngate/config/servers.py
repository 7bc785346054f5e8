"""`listen`, `server_name` and `location` arguments, parsed as nginx's http core module does."""
from __future__ import annotations

import os
import socket

from ngate.config.model import Listen, ServerNames
from ngate.config.regex import compile_regex
from ngate.config.upstreams import split_host_port
from ngate.config.values import is_number, parse_flag, parse_number, parse_size
from ngate.errors import ConfigError

# listen parameters that set socket options: two listens of one address may not both set them
SOCKET_OPTIONS = ("backlog", "rcvbuf", "sndbuf", "ipv6only", "reuseport", "deferred", "bind",
                  "fastopen", "so_keepalive", "accept_filter", "setfib")
_IGNORED_FLAGS = ("deferred", "bind")         # (nginx 1.22 knows no "quic")


def default_listen() -> Listen:
    """A server without `listen`: *:80 when run as root, else *:8000 (as nginx)."""
    return Listen(host="0.0.0.0", port=80 if os.geteuid() == 0 else 8000, unix=None)


def listen_display(listen: Listen) -> str:
    if listen.unix:
        return "unix:" + listen.unix
    if ":" in listen.host:
        return f"[{listen.host}]:{listen.port}"
    return f"{listen.host}:{listen.port}"


def parse_listen(args: list[str], where) -> tuple[Listen, bool]:
    """-> (Listen, whether it sets socket options)."""
    host, port, unix = _listen_address(args[0], where)
    opts: dict = {}
    sockopts = False
    for arg in args[1:]:
        name, eq, value = arg.partition("=")
        if arg in ("default_server", "default"):
            opts["default_server"] = True
        elif arg in ("ssl", "http2", "reuseport", "proxy_protocol"):
            opts[arg] = True
            sockopts = sockopts or arg == "reuseport"
        elif arg in _IGNORED_FLAGS:
            sockopts = sockopts or arg in SOCKET_OPTIONS
        elif eq and name == "backlog":
            if not is_number(value) or len(value) > 10 or not 0 < int(value) < 2 ** 31:
                raise ConfigError(f'invalid backlog "{arg}"', where)
            opts["backlog"] = int(value)
            sockopts = True
        elif eq and name == "ipv6only":
            try:
                opts["ipv6only"] = parse_flag(value)
            except ValueError:
                raise ConfigError(f'invalid ipv6only flags "{value}"', where) from None
            sockopts = True
        elif eq and name in ("rcvbuf", "sndbuf") and not _size_ok(value):
            raise ConfigError(f'invalid {name} "{arg}"', where)
        elif eq and name in ("rcvbuf", "sndbuf", "fastopen", "so_keepalive", "setfib",
                             "accept_filter"):
            sockopts = True
        else:
            raise ConfigError(f'invalid parameter "{arg}"', where)
    return Listen(host=host, port=port, unix=unix, where=where, **opts), sockopts


def _size_ok(text: str) -> bool:
    try:
        return parse_size(text) >= 0
    except ValueError:
        return False


def _listen_address(text: str, where) -> tuple[str, int, str | None]:
    if text.startswith("unix:"):
        if not text[5:]:
            raise ConfigError(
                f'no path in the unix domain socket in "{text}" of the "listen" directive', where)
        return "", 0, text[5:]
    if is_number(text):
        return "0.0.0.0", _listen_port(text, text, where), None
    try:
        host, port = split_host_port(text, "listen", where)
    except ConfigError as err:
        what = "port" if err.message.startswith("invalid port") else "host"
        raise ConfigError(f'invalid {what} in "{text}" of the "listen" directive', where) from None
    port = 80 if port is None else port
    if host in ("*", ""):
        return "0.0.0.0", port, None
    return _listen_host(host, text, where), port, None


def _listen_port(port_text: str, text: str, where) -> int:
    try:
        port = parse_number(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f'invalid port in "{text}" of the "listen" directive', where)
    return port


def _listen_host(host: str, text: str, where) -> str:
    """A literal address stays; a name is resolved to its first address."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except (OSError, ValueError):       # ValueError: a NUL byte in the name
        pass
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, ValueError):       # UnicodeError is a ValueError
        raise ConfigError(f'host not found in "{text}" of the "listen" directive', where) from None


class ServerNamesBuilder:
    """Collects the names of every `server_name` of one server, by kind."""

    def __init__(self) -> None:
        self.first: str | None = None
        self.exact: set[str] = set()
        self.front: list[str] = []
        self.back: list[str] = []
        self.regexes: list = []

    def add(self, name: str, where) -> None:
        if self.first is None:      # $server_name: lower-cased, ".example.com" without its dot
            self.first = name if name.startswith("~") else name.lower().removeprefix(".")
        if name.startswith("~"):
            self.regexes.append(compile_regex(name[1:], where, caseless=True))
            return
        low = name.lower()
        if low.startswith("*."):
            self.front.append(low[1:])
        elif low.startswith(".") and len(low) > 1:
            self.exact.add(low[1:])
            self.front.append(low)
        elif low.endswith(".*"):
            self.back.append(low[:-1])
        else:
            self.exact.add(low)

    def build(self) -> ServerNames:
        by_length = lambda s: -len(s)  # noqa: E731
        return ServerNames(exact=frozenset(self.exact) if self.first is not None else frozenset({""}),
                           wildcard_front=tuple(sorted(self.front, key=by_length)),
                           wildcard_back=tuple(sorted(self.back, key=by_length)),
                           regexes=tuple(self.regexes), first=self.first or "")


LOCATION_MODIFIERS = ("=", "^~", "~", "~*")


def parse_location_args(args: list[str], where) -> tuple[str, str]:
    """-> (modifier, pattern); modifier "" prefix, "=", "^~", "~", "~*", "@"."""
    if len(args) == 2:
        if args[0] not in LOCATION_MODIFIERS:
            raise ConfigError(f'invalid location modifier "{args[0]}"', where)
        return args[0], args[1]
    arg = args[0]
    if arg.startswith("@"):
        return "@", arg
    for mod in ("~*", "^~", "~", "="):
        if arg.startswith(mod) and len(arg) > len(mod):
            return mod, arg[len(mod):]
    return "", arg
