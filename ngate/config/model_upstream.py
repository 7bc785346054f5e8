"""The upstream side of the frozen model (model.py re-exports it): `upstream` groups and their
servers, a compiled proxy_pass and proxy_redirect rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ngate.config.model import Where


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    host: str          # resolved literal address (ngate resolves names at load time)
    port: int
    unix: str | None = None
    weight: int = 1
    max_fails: int = 1
    fail_timeout: float = 10.0
    backup: bool = False
    down: bool = False
    name: str = ""     # as written in the config: "127.0.0.1:8080" ($upstream_addr)
    max_conns: int = 0  # active connections at once (0: no limit); per worker unless the group has a zone
    slot: int = 0      # position in the group: equal addresses are distinct peers, as in nginx


class WorkerState:
    """The mutable part of a frozen upstream group: what each worker keeps for it while it
    runs, so for one configuration only (a reload's groups start afresh, as nginx's peers of
    a new cycle): its balancer (upstream/balancer.py, made on first use) and its peers' state
    (upstream/health.py: peer key -> PeerHealth, or a view of the zone's slot)."""
    __slots__ = ("value", "peers")

    def __init__(self) -> None:
        self.value = None
        self.peers: dict = {}


@dataclass(frozen=True, slots=True)
class Upstream:
    """An `upstream` block, or an implicit one-server group made from a proxy_pass address."""
    name: str
    servers: tuple[UpstreamServer, ...]
    balancer: str = "round_robin"   # round_robin | least_conn | ip_hash | hash | hash_consistent | random
    hash_key: Any = None            # Template for `hash`
    keepalive: int = 0              # idle connections cached per worker (0: no pool)
    keepalive_timeout: float = 60.0
    keepalive_requests: int = 1000
    keepalive_time: float = 3600.0  # a kept connection older than this is closed, not pooled
    implicit: bool = False
    where: Where | None = None
    zone: Any = None                # upstream/shared_state.py UpstreamZone: peer state shared
    counts_conns: bool = False      # least_conn or a server with max_conns: count per peer
    per_request: bool = False       # proxy_pass with variables: nginx makes the peers per request
    state: WorkerState = field(default_factory=WorkerState, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ProxyPass:
    """proxy_pass, compiled.

    Static form: `scheme`, `upstream` (a group, implicit or named), `host_header` ($proxy_host),
    `uri` (None when proxy_pass has no URI part: the client's URI is passed unchanged).
    Variable form: `template` is set; the rendered URL is parsed per request and its host is first
    looked up among `upstream` blocks (`upstreams_by_name` on Config).
    """
    scheme: str                      # "http" | "https"
    upstream: Upstream | None
    host_header: str                 # $proxy_host: "127.0.0.1:8888" or the upstream name
    uri: str | None                  # "/app/" or None
    location_prefix: str = ""        # the location's prefix that uri replaces
    template: Any = None             # Template when proxy_pass has variables
    where: Where | None = None
    ssl_host: str | None = None      # the default proxy_ssl_name when not $proxy_host: a


@dataclass(frozen=True, slots=True)
class ProxyRedirect:
    """proxy_redirect: `default`, `off`, or explicit (replace, replacement) pairs."""
    off: bool = False
    default: bool = True
    rules: tuple[tuple[Any, Any], ...] = ()   # (match: str|re.Pattern, replacement: Template)


@dataclass(frozen=True, slots=True)
class UpstreamSection:
    """What proxy_* and fastcgi_* have in common: nginx's ngx_http_upstream_conf_t, which both
    modules embed in their loc confs. The exchange (proxy/exchange*.py, wire_http1.py,
    fastcgi_proxy.py) reads `section.read_timeout` whichever module's section it is.
    Arrays (hide_header, pass_header) are replaced wholesale by the innermost level."""
    pass_: Any = None                 # ProxyPass, or (fastcgi) an Upstream group or a Template
    connect_timeout: float = 60.0
    read_timeout: float = 60.0
    send_timeout: float = 60.0
    next_upstream: frozenset = frozenset({"error", "timeout"})
    next_upstream_tries: int = 0
    next_upstream_timeout: float = 0.0           # 0: no limit
    intercept_errors: bool = False
    force_ranges: bool = False                   # filters/range.py
    hide_header: frozenset = frozenset()         # array, lower-case bytes
    pass_header: frozenset = frozenset()         # array, lower-case bytes
    ignore_headers: frozenset = frozenset()      # lower-case names (bytes)
    limit_rate: int = 0                          # bytes/s read from the upstream
    bind: Any = None                             # proxy/bind.py: None (off), address, Template
    buffer_size: int = 4096                      # the limit of the upstream's response head
    pass_request_headers: bool = True
    pass_request_body: bool = True
    buffering: bool = True                       # accepted; ngate streams
    request_buffering: bool = True               # off: the body is streamed
    cache: Any = None                            # cache/config.py CacheConf, None: no cache
