"""`listen`, `server_name` and `location` arguments, parsed as nginx's http core module does."""
from __future__ import annotations

import os
import socket

from ngate.config.model import Listen, ServerNames
from ngate.config.regex import compile_regex
from ngate.config.values import is_number, parse_number, parse_size, parse_time
from ngate.errors import ConfigError


def default_listen() -> Listen:
    """A server without `listen`: *:80 when run as root, else *:8000 (as nginx)."""
    return Listen(host="0.0.0.0", port=80 if os.geteuid() == 0 else 8000, unix=None)


def listen_display(listen: Listen) -> str:
    if listen.unix:
        return "unix:" + listen.unix
    if ":" in listen.host:
        return f"[{listen.host}]:{listen.port}"
    return f"{listen.host}:{listen.port}"


def socket_listen(listens) -> Listen:
    """Of the listens of one address, in config order, the one its socket is made as (backlog,
    reuseport, ipv6only, ...): the one that sets socket options (at most one may), else the first.
    nginx's ngx_http_add_addresses copies a later listen's options over the address's only when
    that listen sets some."""
    first = None
    for lst in listens:
        if lst.options:
            return lst
        first = first or lst
    return first


def parse_listen(args: list[str], where) -> tuple[tuple[Listen, ...], bool]:
    """-> (one Listen per address and port, whether it sets socket options).

    nginx's ngx_http_core_listen: the address first (ngx_parse_url with `listen` set), then the
    parameters in order; every address of a host name and every port of a range (`8000-8009`)
    is a listen of its own, with the same parameters.
    """
    addresses = listen_addresses(args[0], where)
    opts: dict = {}
    for arg in args[1:]:
        _listen_parameter(arg, opts, where)
    sockopts = opts.get("options", False)
    listens = tuple(Listen(host=host, port=port, unix=unix, where=where, **opts)
                    for host, port, unix in addresses)
    return listens, sockopts


def _listen_parameter(arg: str, opts: dict, where) -> None:
    """One parameter, as ngx_http_core_listen on Linux reads it (exact names, `name=` prefixes;
    `setfib=` is FreeBSD's, so an invalid parameter here). A socket option sets "options" (two
    listens of one address may not both set them) and "bind"."""
    if arg in ("default_server", "default"):
        opts["default_server"] = True
        return
    if arg in ("ssl", "http2", "proxy_protocol"):
        opts[arg] = True
        return
    if arg == "bind":
        pass
    elif arg.startswith("fastopen="):
        opts["fastopen"] = _atoi(arg[9:])
        if opts["fastopen"] == -1:
            raise ConfigError(f'invalid fastopen "{arg}"', where)
    elif arg.startswith("backlog="):
        value = arg[8:]     # (nginx keeps it in an int: past 2^31 - 1 ngate refuses it)
        if not is_number(value) or len(value) > 10 or not 0 < int(value) < 2 ** 31:
            raise ConfigError(f'invalid backlog "{arg}"', where)
        opts["backlog"] = int(value)
    elif arg.startswith(("rcvbuf=", "sndbuf=")):
        name = arg[:6]
        try:
            opts[name] = parse_size(arg[7:])
        except ValueError:
            raise ConfigError(f'invalid {name} "{arg}"', where) from None
    elif arg.startswith("accept_filter="):
        from ngate.observability import error_log
        error_log.log("emerg", f'accept filters "{arg}" are not supported on this platform, '
                               f'ignored in {where}')
        return
    elif arg == "deferred":
        opts["deferred"] = True
    elif arg.startswith("ipv6only=o"):
        if arg[10:] not in ("n", "ff"):
            raise ConfigError(f'invalid ipv6only flags "{arg[9:]}"', where)
        opts["ipv6only"] = arg[10:] == "n"
    elif arg == "reuseport":
        opts["reuseport"] = True
    elif arg.startswith("so_keepalive="):
        opts["so_keepalive"] = _so_keepalive(arg[13:], where)
    else:
        raise ConfigError(f'invalid parameter "{arg}"', where)
    opts["options"] = opts["bind"] = True


def _so_keepalive(value: str, where) -> tuple:
    """`on`, `off` or `[idle]:[interval]:[count]` (times in seconds, at least one given) ->
    (on, idle, interval, count), as ngx_http_core_listen reads it."""
    if value in ("on", "off"):
        return (value == "on", 0, 0, 0)
    idle_text, _, rest = value.partition(":")
    intvl_text, _, cnt_text = rest.partition(":")
    try:
        idle = parse_time(idle_text, allow_ms=False) if idle_text else 0
        intvl = parse_time(intvl_text, allow_ms=False) if intvl_text else 0
        cnt = parse_number(cnt_text) if cnt_text else 0
    except ValueError:
        idle = intvl = cnt = 0
    if not (idle or intvl or cnt):
        raise ConfigError(f'invalid so_keepalive value: "{value}"', where)
    return (True, idle, intvl, cnt)


# ---------------------------------------------------------------- the listen address

_SUN_PATH = 108     # sizeof(sockaddr_un.sun_path) on Linux


def listen_addresses(text: str, where) -> list[tuple[str, int, str | None]]:
    """`listen`'s first argument -> [(host, port, unix path or None)], as nginx's ngx_parse_url
    with `listen` set and default port 80 (src/core/ngx_inet.c): `unix:/path`, `[::1]:80`,
    `127.0.0.1:80`, `*:80`, `80`, `name:80`, a name alone (port 80); a port may be a range
    `lo-hi` (1 <= lo <= hi <= 65535): one address per port. A host name is resolved at once,
    to all its addresses."""
    if text[:5].lower() == "unix:":
        path = text[5:]
        if not path:
            _fail("no path in the unix domain socket", text, where)
        if len(path.encode()) + 1 > _SUN_PATH:
            _fail("too long path in the unix domain socket", text, where)
        return [("", 0, path)]
    if text.startswith("["):
        hosts, ports = _inet6_address(text, where)
    else:
        hosts, ports = _inet_address(text, where)
    return [(host, port, None) for host in hosts for port in ports]


def _fail(err: str, text: str, where):
    raise ConfigError(f'{err} in "{text}" of the "listen" directive', where)


def _atoi(text: str) -> int:
    """ngx_atoi: ASCII digits only and at most 2^63 - 1, else -1 (so a bare
    `99999999999999999999` is a host name to nginx, and `99999` an invalid port)."""
    try:
        return parse_number(text)
    except ValueError:
        return -1


def _port_range(port: str, text: str, where) -> range:
    """`lo` or `lo-hi` after the colon: "invalid port" for a part that is not 1..65535 (the
    upper bound is checked first), "invalid port range" for lo > hi."""
    last = 0
    lo_text, dash, hi_text = port.partition("-")
    if dash:
        last = _atoi(hi_text)
        if not 0 < last < 65536:
            _fail("invalid port", text, where)
    first = _atoi(lo_text)
    if not 0 < first < 65536:
        _fail("invalid port", text, where)
    if last and first > last:
        _fail("invalid port range", text, where)
    return range(first, (last or first) + 1)


def _bare_ports(text: str, where) -> range | None:
    """A port (or range) alone means the wildcard address; anything else is a host name.
    nginx decides by whether the part before the dash is a number: `8000-x` and `x-8000` are
    names, `0-8000` and `8000-99999` invalid ports."""
    last, err = 0, None
    lo_text, dash, hi_text = text.partition("-")
    if dash:
        last = _atoi(hi_text)
        if last == -1:
            return None
        if not 0 < last < 65536:
            err = "invalid port"
            last = 0
    first = _atoi(lo_text)
    if first == -1:
        return None
    if err:
        _fail(err, text, where)
    if not 0 < first < 65536:
        _fail("invalid port", text, where)
    if last and first > last:
        _fail("invalid port range", text, where)
    return range(first, (last or first) + 1)


def _inet_address(text: str, where) -> tuple[list[str], range]:
    """ngx_parse_inet_url: host and port split at the first colon."""
    if "/" in text or "?" in text:
        _fail("invalid host", text, where)
    host, colon, port = text.partition(":")
    if colon:
        ports = _port_range(port, text, where)
    else:
        ports = _bare_ports(text, where)
        if ports is not None:
            return ["0.0.0.0"], ports
        ports = range(80, 81)
    if not host:
        _fail("no host", text, where)
    if host == "*":
        return ["0.0.0.0"], ports
    addr = inet_addr(host)
    if addr is not None:
        return [addr], ports
    return _resolve(host, text, where), ports


def _inet6_address(text: str, where) -> tuple[list[str], range]:
    """ngx_parse_inet6_url: `[address]`, then nothing or `:port`."""
    end = text.find("]")
    if end < 0:
        _fail("invalid host", text, where)
    rest = text[end + 1:]
    if "/" in rest or (rest and rest[0] != ":"):
        _fail("invalid host", text, where)
    ports = _port_range(rest[1:], text, where) if rest else range(80, 81)
    host = text[1:end]
    if not host:
        _fail("no host", text, where)
    try:
        packed = socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        _fail("invalid IPv6 address", text, where)
    return [socket.inet_ntop(socket.AF_INET6, packed)], ports


def inet_addr(text: str) -> str | None:
    """nginx's ngx_inet_addr: four dotted decimal octets (leading zeros are decimal, an empty
    octet is 0) -> the canonical dotted form; None for anything else (then nginx resolves it)."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p == "" or is_number(p) for p in parts):
        return None
    octets = [int(p) if p else 0 for p in parts]
    if any(o > 255 for o in octets) or octets == [255, 255, 255, 255]:
        return None         # INADDR_NONE: nginx asks getaddrinfo, which gives the same address
    return ".".join(map(str, octets))


def _resolve(host: str, text: str, where) -> list[str]:
    """Every IPv4 and IPv6 address of a name, in the resolver's order (nginx's
    ngx_inet_resolve_host: getaddrinfo, AF_UNSPEC, SOCK_STREAM, AI_ADDRCONFIG)."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_ADDRCONFIG)
    except (OSError, ValueError):       # ValueError: a NUL byte; UnicodeError is one too
        _fail("host not found", text, where)
    found = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        _fail("host not found", text, where)
    return found


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
