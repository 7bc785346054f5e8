"""Frozen runtime configuration: what config/compile.py produces and the request path reads.

Everything here is built once per (re)load. Inheritance (main -> http -> server -> location ->
nested location / if) is already resolved: every Location carries a complete LocConf, so the
request path never walks parents or the raw crossplane tree.

Values that contain nginx variables are `Template` objects (routing/variables.py), compiled once;
`Template.render(ctx) -> str`. Strings are str; header bytes on the wire are latin-1 of them.

Here: the server and location side (Listen, Server, LocConf, Location, Main, Config). The parts
owned by one module live beside it and are re-exported here: model_upstream.py (upstream
groups, proxy_pass, UpstreamSection), model_proxy.py (ProxyConf), model_fastcgi.py
(FastCGIConf), model_tls.py (ssl_*, proxy_ssl_*), model_rewrite.py (the rewrite ops),
model_logs.py, model_access.py (AccessPlan, limit_except), model_headers.py, model_static.py,
model_modules.py (charset, secure_link, mirror, websocket). LocConf holds the HTTP core's
fields and one section per other module (config/sections.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ngate.config.model_fastcgi import FastCGIConf  # noqa: F401
from ngate.config.model_proxy import ProxyConf  # noqa: F401
from ngate.config.model_access import AccessPlan, AuthBasic, LimitExcept  # noqa: F401
from ngate.config.model_headers import HeadersConf  # noqa: F401
from ngate.config.model_logs import AccessLog, ErrorLog, LogConf, LogFormat  # noqa: F401
from ngate.config.model_modules import (CharsetConf, MirrorConf, SecureLinkConf,  # noqa: F401
                                        WebSocketConf)
from ngate.config.model_static import StaticConf  # noqa: F401
from ngate.config.model_rewrite import (BreakOp, IfCondition, IfOp, ReturnOp, RewriteConf,  # noqa: F401
                                        RewriteOp, SetOp)
from ngate.config.model_tls import ProxyTls, TlsServerConf  # noqa: F401
from ngate.config.model_upstream import (ProxyPass, ProxyRedirect, Upstream,  # noqa: F401
                                         UpstreamSection, UpstreamServer, WorkerState)

# Sentinel time/size values
UNLIMITED = 0


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the configuration, for error messages: `in file:line`."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# ---------------------------------------------------------------- listen / server

@dataclass(frozen=True, slots=True)
class Listen:
    """One `listen` directive. `key` identifies the socket: servers with the same key share it."""
    host: str          # "0.0.0.0", "127.0.0.1", "::1" ... ("" for unix)
    port: int          # 0 for unix
    unix: str | None   # path of a unix socket, or None
    default_server: bool = False
    ssl: bool = False
    http2: bool = False
    reuseport: bool = False
    backlog: int = 511
    ipv6only: bool = True
    proxy_protocol: bool = False   # the PROXY protocol header precedes HTTP (and TLS)
    where: Where | None = None
    options: bool = False   # sets socket options (backlog=, reuseport, ...): the socket is made
                            # as this listen says (one listen of an address may set them)
    bind: bool = False      # bound on its own even beside a wildcard listen of its port
                            # (`bind`, or any socket option: nginx's lsopt.bind)
    rcvbuf: int = -1        # SO_RCVBUF / SO_SNDBUF of the socket (-1: the system's)
    sndbuf: int = -1
    fastopen: int = -1      # TCP_FASTOPEN queue length (-1: not set)
    deferred: bool = False  # TCP_DEFER_ACCEPT
    so_keepalive: tuple | None = None   # (on, idle s, interval s, count): SO_KEEPALIVE and
                                        # TCP_KEEP* (0: the system's)

    @property
    def key(self) -> tuple:
        return ("unix", self.unix) if self.unix else (self.host, self.port)


@dataclass(frozen=True, slots=True)
class ServerNames:
    """server_name, split by kind for nginx's selection order."""
    exact: frozenset[str] = frozenset()            # lower-cased
    wildcard_front: tuple[str, ...] = ()           # "*.example.com" and ".example.com" stored as ".example.com"
    wildcard_back: tuple[str, ...] = ()            # "www.example.*" stored as "www.example."
    regexes: tuple[re.Pattern, ...] = ()
    first: str = ""                                # the first name: $server_name


# ---------------------------------------------------------------- headers

                                     # unix socket's path (nginx's url.host)


@dataclass(frozen=True, slots=True)
class HeaderSet:
    """proxy_set_header / add_header / fastcgi_param item."""
    name: str            # as written ("X-Real-IP")
    lname: bytes         # lower-cased bytes, for matching
    value: Any           # Template
    always: bool = False         # add_header ... always
    if_not_empty: bool = False   # fastcgi_param ... if_not_empty


# ---------------------------------------------------------------- error_page, try_files, disable_symlinks

@dataclass(frozen=True, slots=True)
class DisableSymlinks:
    """`disable_symlinks on|if_not_owner [from=part]` (off is None): ngate/static/symlinks.py."""
    mode: str                      # "on" | "if_not_owner"
    from_: Any = None              # Template or None


@dataclass(frozen=True, slots=True)
class ErrorPage:
    """error_page 404 500 =200 /x.html | @named | http://..."""
    uri: Any              # Template
    override: int | None = None   # "=code"; -1 for bare "=" (use the status of the redirect target)
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class TryFiles:
    """try_files, which nginx does not inherit: it applies to the block at `block` only."""
    block: Where | None
    items: tuple          # Templates; the last is the fallback
    code: int | None = None    # the fallback is "=code"


# ---------------------------------------------------------------- location configuration

@dataclass(frozen=True, slots=True)
class LocConf:
    """All http/server/location-level settings with inheritance already applied.

    As nginx keeps one loc conf per module, the HTTP core's settings (ngx_http_core_module's
    directives) are fields of LocConf itself and every other module's are one section field,
    a frozen object the module owns (config/sections.py lists them): `conf.proxy.read_timeout`,
    `conf.static.index`. Defaults are nginx's. A field documented as "array" was replaced
    wholesale by the innermost level that set any item (nginx's rule for proxy_set_header,
    add_header, fastcgi_param, error_page, ...).
    """
    # ------------------------------------------------ sections: one per module (sections.py)
    proxy: ProxyConf = ProxyConf()                         # proxy_* (model_proxy.py)
    fastcgi: FastCGIConf = FastCGIConf()                   # fastcgi_* (model_fastcgi.py)
    headers: HeadersConf = HeadersConf()                   # add_header, expires
    static: StaticConf = StaticConf()                      # index, autoindex, random_index, gzip_static
    log: LogConf = LogConf()                               # access_log
    rewrite: RewriteConf = RewriteConf()                   # this level's rewrite ops, rewrite_log
    charset: CharsetConf = CharsetConf()                   # charset, charset_types, recoding
    secure_link: SecureLinkConf = SecureLinkConf()
    mirror: MirrorConf = MirrorConf()
    websocket: WebSocketConf = WebSocketConf()             # ngate: WebSocket pings
    # the access phase (ngate/access): allow/deny, auth_basic, auth_request, satisfy, auth_delay
    # compiled into one AccessPlan; None when the location checks nothing (then it costs nothing)
    access: "AccessPlan | None" = None
    limits: Any = None                                     # limits/config.py Limits, None: no limit
    filters: Any = None                                    # filters/: header filters, None: none
    realip: Any = None                                     # realip.RealIp (None: nothing trusted)
    userid: Any = None                                     # routing/userid.py UserId; None: off
    valid_referers: Any = None                             # routing/referer.py ValidReferers
    # ------------------------------------------------ the HTTP core (ngx_http_core_module)
    error_page: tuple[tuple[int, ErrorPage], ...] = ()     # array: (code, page)
    client_max_body_size: int = 1024 * 1024
    client_body_timeout: float = 60.0
    client_body_buffer_size: int = 16 * 1024                # a buffered body above this spills to a temp file
    client_body_temp_path: tuple = ("client_body_temp", ())  # (absolute path, levels): compile sets the path
    client_body_in_file_only: str = "off"                   # "off", "on" (file kept) or "clean"
    client_body_in_single_buffer: bool = False              # ngate's in-memory body is one buffer anyway
    send_timeout: float = 60.0
    http2_chunk_size: int = 8192     # ngx_http_v2_module's; also a Server field (the connection's)
    keepalive_timeout: float = 75.0
    keepalive_requests: int = 1000
    limit_rate: Any = 0                                    # bytes/s: int, or a Template
    limit_rate_after: Any = 0
    keepalive_line: bytes = b"Connection: keep-alive\r\n"  # + "Keep-Alive: timeout=N" (2nd arg)
    keepalive_time: float = 3600.0                         # a connection's lifetime for keep-alive
    keepalive_disable: frozenset = frozenset({"msie6"})    # msie6 | safari ("none": empty)
    lingering_close: str = "on"                            # off | on | always
    lingering_time: float = 30.0
    lingering_timeout: float = 5.0
    default_type: str = "text/plain"
    types: Any = None                                      # dict ext -> mime
    server_tokens: bool = True
    absolute_redirect: bool = True                         # Location made absolute ...
    port_in_redirect: bool = True                          # ... with the listening port
    server_name_in_redirect: bool = False                  # ... and the primary server name
    msie_padding: bool = True          # status pages >= 400 padded for MSIE/Chrome (http/msie.py)
    msie_refresh: bool = False         # 301/302 as a 200 Refresh page for MSIE (http/msie.py)
    subrequest_output_buffer_size: int = 4096   # an in-memory subrequest's body (SSI set=)
    root: Any = None                                       # Template; default "<prefix>/html"
    alias: Any = None
    alias_len: int | None = None       # alias: the location prefix length it replaces; -1: whole
    error_log: tuple[ErrorLog, ...] = ()
    log_not_found: bool = True
    log_subrequest: bool = False
    resolver: Any = None                                   # resolver/config.py ResolverConf
    resolver_timeout: float = 30.0
    internal: bool = False                                 # `internal`: only internal redirects
    limit_except: "LimitExcept | None" = None
    try_files: "TryFiles | None" = None                    # for its own block only
    etag: bool = True
    if_modified_since: str = "exact"                       # exact | before | off
    disable_symlinks: "DisableSymlinks | None" = None      # None: off (follow symlinks)
    max_ranges: int | None = None                          # None: any number; 0: no ranges
    chunked_transfer_encoding: bool = True                 # off: close-delimited instead
    recursive_error_pages: bool = False
    # the content handler a module's directive chose (nginx sets clcf->handler): proxy_pass and
    # fastcgi_pass are their sections' `pass_`; these modules have no other setting
    stub_status: bool = False                              # the `stub_status` content handler
    metrics: bool = False                                  # ngate's `metrics` content handler
    empty_gif: bool = False                                # the empty_gif content handler
    no_upstream: bool = False                              # IfOp.kept: [alert], 500
    # chosen when the config is compiled (ngate/http/modules.py), read by ngate/http/phases.py
    content: Any = None                  # the content handler: handler(ctx)
    access_steps: tuple = ()             # PREACCESS + ACCESS: step(ctx, conf) -> 0 | status | -1
    precontent_steps: tuple = ()         # try_files, mirror: step(ctx, conf) -> took it over
    plain_head: bool = False             # no module adds to ngate's own response heads: no
                                         # filters, add_header, userid, charset (http/respond.py)
    ka_full: bool = True                 # keepalive_timeout 0 or keepalive_disable safari: the
                                         # keep-alive test is respond.check_keepalive's whole
                                         # one for every request (else for a POST alone); True
                                         # until bind() (http/respond.py, static/handler.py)
    mime: Any = field(default=None, compare=False, repr=False)  # URI -> Content-Type, kept
                                         # by http/respond.py content_type (a dict, bounded; a
                                         # replace() of types/default_type must bind() again)
    # proxy_pass / fastcgi_pass: what goes upstream (a Plan); uncached: proxy_cache's other Plan
    upstream_plan: Any = field(default=None, compare=False, repr=False)
    uncached_plan: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Location:
    modifier: str                  # "" prefix, "=", "^~", "~", "~*", "@" named
    pattern: str
    regex: re.Pattern | None
    conf: LocConf
    locations: tuple["Location", ...] = ()   # nested, in file order
    where: Where | None = None
    # compiled match tables for the nested locations (routing/locations.py builds them)
    matcher: Any = None
    # what the location search does after choosing this location (http/phases.py
    # find_location_phase), from the fields above when it is made (never passed):
    # named_groups: a regex with named groups, whose captures become variables;
    # auto_redirect: nginx's auto_redirect (a prefix or `=` name ending in "/" with proxy_pass
    # or fastcgi_pass: "<name without the slash>" is answered with a 301 to the name)
    named_groups: bool = field(init=False, default=False)
    auto_redirect: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "named_groups",
                           self.regex is not None and bool(self.regex.groupindex))
        object.__setattr__(self, "auto_redirect",
                           self.modifier in ("", "=", "^~") and len(self.pattern) > 1
                           and self.pattern.endswith("/")
                           and (self.conf.proxy.pass_ is not None
                                or self.conf.fastcgi.pass_ is not None))


@dataclass(frozen=True, slots=True)
class Server:
    listens: tuple[Listen, ...]
    names: ServerNames
    conf: LocConf                    # server-level LocConf (used when no location matches)
    locations: tuple[Location, ...]  # top-level locations, file order
    named_locations: dict            # "@name" -> Location
    matcher: Any = None              # routing/locations.py table for `locations`
    client_header_timeout: float = 60.0
    large_client_header_buffers: tuple[int, int] = (4, 8192)
    client_header_buffer_size: int = 1024
    underscores_in_headers: bool = False
    ignore_invalid_headers: bool = True
    merge_slashes: bool = True
    where: Where | None = None
    tls: TlsServerConf | None = None   # set for a server on a `listen ... ssl` socket
    # HTTP/2 (ngate/http2/): `http2 on` and the http2_* settings of the server
    http2: bool = False
    http2_max_concurrent_streams: int = 128
    http2_max_field_size: int = 4096
    http2_max_header_size: int = 16384
    http2_idle_timeout: float = 0.0     # 0: keepalive_timeout (nginx 1.19.7+)
    http2_recv_timeout: float = 0.0     # 0: client_header_timeout
    http2_body_preread_size: int = 65536
    http2_chunk_size: int = 8192
    http2_websocket: bool = True        # ngate: SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)


@dataclass(frozen=True, slots=True)
class MapBlock:
    source: Any                      # Template
    variable: str                    # without "$"
    default: Any = None              # Template or None
    exact: dict = field(default_factory=dict)     # lower-cased key -> Template
    regexes: tuple = ()              # (re.Pattern, Template)
    hostnames: bool = False
    wild_front: tuple = ()           # (".example.com", Template), longest first
    wild_back: tuple = ()
    volatile: bool = False


@dataclass(frozen=True, slots=True)
class Main:
    """Main (top-level) context."""
    daemon: bool = True
    master_process: bool = True
    pid: str = ""                    # absolute path
    worker_processes: int = 1
    worker_connections: int = 512
    worker_shutdown_timeout: float = 0.0   # 0: wait forever
    error_log: tuple[ErrorLog, ...] = ()
    user: str | None = None          # `user name [group]`: the workers' identity when the
    group: str | None = None         # master runs as root (supervisor/identity.py); None
    uid: int | None = None           # when not root (nginx ignores `user` then)
    gid: int | None = None
    worker_rlimit_nofile: int = 0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole compiled configuration."""
    main: Main
    servers: tuple[Server, ...]
    # listen key -> (default server, servers in config order) ; built by compile
    by_listen: dict
    upstreams: dict                  # name -> Upstream (named `upstream` blocks)
    maps: dict                       # variable name -> MapBlock
    log_formats: dict                # name -> LogFormat (includes "combined")
    prefix: str                      # -p (default: the directory ngate was told, see cli)
    conf_file: str                   # absolute path of the main file
    http_conf: LocConf = LocConf()   # http-level LocConf
    access_logs: tuple = ((),)       # the distinct access_log lists, by LocConf.log.slot
    user_vars: Any = None            # routing/variables.py UserVars: set/map names, map blocks
    files: tuple[str, ...] = ()      # every file read (for -T)
    tls_listens: dict = field(default_factory=dict)   # listen key -> server/tls.py TlsListen
    zones: tuple = ()                # limits/zones.py Zone: limit_req/limit_conn shared zones
    cache_paths: tuple = ()          # cache/config.py CachePath: proxy/fastcgi_cache_path zones
    limit_rate_used: bool = False    # some limit_rate is not 0: connections check their writes
    raw: Any = None                  # crossplane payload (for -T only)
    stub_status: bool = False        # stub_status or $connections_* used: workers count
    open_files: tuple[str, ...] = ()  # log files nginx opens at load (cycle->open_files)
    temp_paths: tuple = ()           # client_body_temp_path values: the master creates them (ngx_create_paths)
    implicit: dict = field(default_factory=dict)  # (host, port) -> the group of a proxy_pass/fastcgi_pass address
