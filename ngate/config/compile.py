"""Raw statement tree -> frozen model (model.py).

Two passes over the statements. Walking (directives.check + handlers) records, on one Level per
http/server/location/if block, only what that block itself sets; then building merges levels
top-down the way nginx's merge_loc_conf does: a scalar comes from the innermost level that set
it, an array (proxy_set_header, add_header, error_page, access_log, ...) from the innermost level
that has any item of it. rewrite-module ops belong to their own level only. proxy_pass carries
into `if` and `limit_except` blocks but not into nested locations. Level keys "section.field"
become the fields of LocConf's module sections (config/sections.py).
"""
from __future__ import annotations

import dataclasses
import os
import re
from types import MappingProxyType

from ngate.access.phase import access_plan
from ngate import realip
from ngate.config import directives, sections, tls
from ngate.config.model import (Config, IfOp, LimitExcept, LocConf, Location, LogFormat, Main,
                                ProxyRedirect, Server)
from ngate.config.regex import compile_regex
from ngate.config.servers import ServerNamesBuilder, default_listen
from ngate.errors import ConfigError
from ngate.filters import config as filters_config
from ngate.http import modules as http_modules
from ngate.config import charset_map
from ngate.cache import config as cache_config
from ngate.limits import config as limits_config
from ngate.limits.zones import Zones
from ngate.upstream.shared_state import UpstreamZones
from ngate.routing import userid
from ngate.routing.variables import Template, UserVars, compile_template, lookup, registry

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')
DEFAULT_TYPES = MappingProxyType({"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"})
LOC_FIELDS = sections.core_fields(f.name for f in dataclasses.fields(LocConf))
SERVER_FIELDS = ("client_header_timeout", "large_client_header_buffers",
                 "client_header_buffer_size", "underscores_in_headers", "ignore_invalid_headers",
                 "merge_slashes", "http2", "http2_max_concurrent_streams", "http2_max_field_size",
                 "http2_max_header_size", "http2_idle_timeout", "http2_recv_timeout",
                 "http2_body_preread_size", "http2_chunk_size",
                 "http2_websocket")
MAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(Main))
# arrays: collected as lists per level, frozen here
FREEZE = {
    "proxy.set_header": tuple, "headers.add_header": tuple, "error_page": tuple,
    "log.access_log": tuple, "error_log": tuple, "static.index": tuple,
    "proxy.hide_header": frozenset, "proxy.pass_header": frozenset,
    "fastcgi.param": tuple, "fastcgi.catch_stderr": tuple,
    "proxy.cookie_domain": tuple, "proxy.cookie_path": tuple, "proxy.cookie_flags": tuple,
    "fastcgi.hide_header": frozenset, "fastcgi.pass_header": frozenset,
    "proxy.redirect": lambda items: redirect(items),
    "types": MappingProxyType,
}


class Level:
    """What one block sets itself. Kind-specific attributes are set by its handler."""

    def __init__(self, ctx: str, parent: "Level | None", where) -> None:
        self.ctx = ctx
        self.parent = parent
        self.where = where
        self.vals: dict = {}
        self.ops: list = []            # SetOp, ReturnOp, RewriteOp, BreakOp, Level (an if)
        self.locations: list = []
        self.limit_except: Level | None = None
        self.listens: list = []
        self.names = ServerNamesBuilder()
        self.modifier = self.pattern = ""
        self.regex = self.condition = None

    def location(self) -> "Level | None":
        lv = self
        while lv is not None and lv.ctx != "location":
            lv = lv.parent
        return lv


class Compiler:
    def __init__(self, prefix: str, user_vars: frozenset) -> None:
        self.prefix = prefix
        self.maps: dict = {}            # map, geo, split_clients blocks by variable name
        self.user_vars = UserVars(user_vars, self.maps)     # templates bind this config's maps
        self.events_seen = False
        self.http: Level | None = None
        self.servers: list[Level] = []
        self.upstreams: dict = {}
        self.implicit: dict = {}
        self.unknown_variables: list[ConfigError] = []
        self.log_formats: dict = {"combined": LogFormat("combined", self.template(COMBINED))}
        self.listen_keys: dict = {}
        self.conf_dir = prefix          # nginx's conf_prefix: the main config file's directory
        self.zones = Zones()            # limit_req_zone / limit_conn_zone (shared memory)
        self.upstream_zones = UpstreamZones(self.zones.by_name)   # upstream `zone` (shared peer state)
        self.uses_stats = False        # stub_status or $connections_*: workers count
        self.open_files: dict = {}          # log paths to open at load, in config order
        self.temp_paths: dict = {}          # client_body_temp_path (path, levels), config order
        self.limit_rate_used = False    # a limit_rate other than 0 (Config.limit_rate_used)
        self.log_slots: dict = {(): 0}  # access_log lists -> LocConf.log.slot (Config.access_logs)

    # -------------------------------------------------------- used by handlers
    def level(self, ctx: str, parent: Level, where) -> Level:
        return Level(ctx, parent, where)

    def walk(self, stmts, lv: Level) -> None:
        for st in stmts:
            row = directives.check(st, lv.ctx)
            try:
                row.handler(self, lv, st)
            except ConfigError:
                raise
            except Exception as err:        # noqa: BLE001 - see unexpected()
                raise unexpected(st, err) from None

    def template(self, text: str, where=None):
        """A compiled Template. An unknown variable is reported after the whole walk, as nginx
        checks variables only once every directive has been read (structural errors first)."""
        if "connections_" in text:
            self.uses_stats = True
        try:
            return compile_template(text, self.user_vars, where)
        except ConfigError as e:
            if not e.message.startswith('unknown "'):
                raise
            self.unknown_variables.append(e)
            return Template(text, (text,))

    def regex(self, pattern: str, where, caseless: bool = False):
        return compile_regex(pattern, where, caseless)

    def path(self, path: str) -> str:
        """A path relative to the prefix (-p): root, pid, logs (ngx_conf_full_name(.., 0))."""
        return os.path.normpath(os.path.join(self.prefix, path))

    def conf_path(self, path: str) -> str:
        """A path relative to the main config file's directory: certificates, keys, CAs, CRLs,
        dhparam, password files (ngx_conf_full_name(.., 1), nginx's conf prefix)."""
        return os.path.normpath(os.path.join(self.conf_dir, path))

    # -------------------------------------------------------- building the model
    def build_main(self, lv: Level) -> Main:
        vals = {k: FREEZE.get(k, lambda v: v)(v) for k, v in lv.vals.items() if k in MAIN_FIELDS}
        vals.setdefault("pid", self.path("logs/nginx.pid"))
        if os.geteuid() == 0 and "uid" not in vals:     # nginx's default: nobody
            from ngate.supervisor.identity import DEFAULT_USER, default_group, resolve
            vals["user"], vals["group"] = DEFAULT_USER, default_group()
            vals["uid"], vals["gid"] = resolve(vals["user"], vals["group"])
        return Main(**vals)

    def http_base(self) -> dict:
        temp = (self.path("client_body_temp"), ())      # nginx's NGX_HTTP_CLIENT_TEMP_PATH
        self.temp_paths.setdefault(temp[0], temp)
        return {"root": self.template(self.path("html")), "types": DEFAULT_TYPES,
                "client_body_temp_path": temp}

    def build_servers(self, http_vals: dict) -> tuple[Server, ...]:
        ssl_keys = {lst.key for srv in self.servers for lst in srv.listens if lst.ssl}
        servers = tuple(self.build_server(srv, http_vals, ssl_keys) for srv in self.servers)
        tls.check_listens(servers)
        return servers

    def build_server(self, srv: Level, http_vals: dict, ssl_keys=frozenset()) -> Server:
        vals = merge(http_vals, srv, handler=False)
        on_ssl = any(lst.key in ssl_keys for lst in srv.listens)
        locations = tuple(self.build_location(loc, vals) for loc in srv.locations)
        unnamed = tuple(loc for loc in locations if loc.modifier != "@")
        return Server(
            listens=tuple(srv.listens) or (default_listen(),), names=srv.names.build(),
            conf=loc_conf(self, vals, srv), locations=unnamed,
            named_locations={loc.pattern: loc for loc in locations if loc.modifier == "@"},
            matcher=build_matcher(unnamed), where=srv.where,
            tls=tls.server_tls(vals, srv.where, self.conf_dir) if on_ssl else None,
            **{k: vals[k] for k in SERVER_FIELDS if k in vals})

    def build_location(self, lv: Level, parent_vals: dict) -> Location:
        vals = merge(parent_vals, lv, handler=False)
        children = tuple(self.build_location(ch, vals) for ch in lv.locations)
        return Location(modifier=lv.modifier, pattern=lv.pattern, regex=lv.regex,
                        conf=loc_conf(self, vals, lv), locations=children, where=lv.where,
                        matcher=build_matcher(children))


def unexpected(st, err: Exception) -> ConfigError:
    """A handler failed in a way it did not word itself (a value no check foresaw): still an
    `[emerg]` at the directive's file:line, never a traceback, at -t, at start or on reload."""
    if isinstance(err, RecursionError):
        return ConfigError(f'"{st.directive}" directive is nested too deeply', st.where)
    return ConfigError(f'"{st.directive}" directive invalid value ({type(err).__name__}: '
                       f'{err})', st.where)


def merge(parent_vals: dict, lv: Level, handler: bool) -> dict:
    """nginx's merge: the child's own settings over the parent's (arrays replace wholesale).
    `handler` False drops the parent's proxy_pass/fastcgi_pass (a nested location does not
    inherit the content handler; an `if` or `limit_except` block does)."""
    vals = dict(parent_vals)
    if not handler:
        vals.pop("proxy.pass_", None)
        vals.pop("fastcgi.pass_", None)
        vals.pop("empty_gif", None)
    vals.update(lv.vals)
    return vals


def loc_conf(c: Compiler, vals: dict, lv: Level) -> LocConf:
    """The frozen LocConf of a level; its `if` blocks become IfOp with their own LocConf."""
    fields, parts = sections.split(vals, FREEZE, LOC_FIELDS)
    parts["proxy"]["ssl"] = tls.proxy_tls(vals)
    fields["realip"] = realip.compile_conf(vals)
    parts["rewrite"]["ops"] = tuple(_op(c, op, vals) for op in lv.ops)
    log = parts["log"]
    log["slot"] = c.log_slots.setdefault(log.get("access_log", ()), len(c.log_slots))
    fields["limits"] = limits_config.build(vals)
    fields["charset"] = charset = charset_map.section(vals)
    fields["filters"], parts["static"]["gzip_static"] = filters_config.build(vals, charset.recode)
    fields["userid"] = userid.build(vals, lookup("uid_reset", c.user_vars))
    parts["proxy"]["cache"] = cache_config.build(vals, "proxy")
    parts["fastcgi"]["cache"] = cache_config.build(vals, "fastcgi")
    for section in sections.PLAIN:
        fields[section.name] = section.cls(**parts[section.name])
    fields["access"] = access_plan(vals)
    referers = vals.get("valid_referers")        # routing/referer.py's builder
    fields["valid_referers"] = referers.build() if referers is not None else None
    if lv.limit_except is not None:
        lim = lv.limit_except
        fields["limit_except"] = LimitExcept(lim.methods,
                                             loc_conf(c, merge(vals, lim, handler=True), lim))
    return http_modules.bind(LocConf(**fields))     # its phase handlers and plans


def _op(c: Compiler, op, vals: dict):
    if not isinstance(op, Level):
        return op
    if_vals = merge(vals, op, handler=True)
    conf = loc_conf(c, if_vals, op)
    conf = dataclasses.replace(conf, rewrite=dataclasses.replace(conf.rewrite, ops=()))
    kept = None
    if conf.proxy.pass_ is None and conf.fastcgi.pass_ is None:
        kept = http_modules.bind(dataclasses.replace(conf, no_upstream=True))
    return IfOp(condition=op.condition, ops=tuple(_op(c, o, if_vals) for o in op.ops),
                conf=conf, where=op.where, kept=kept)


def _same(value):
    return value


def redirect(items) -> ProxyRedirect:
    """proxy_redirect items of one level: "default", "off", or (match, replacement)."""
    if items == ["off"]:
        return ProxyRedirect(off=True, default=False)
    rules = tuple(i for i in items if isinstance(i, tuple))
    return ProxyRedirect(off=False, default="default" in items, rules=rules)


def build_matcher(locations: tuple):
    """routing/locations.py's match table for these locations (None while it is not written)."""
    if not locations:
        return None
    try:
        from ngate.routing.locations import build_matcher as build
    except ImportError:
        return None
    return build(locations)


_NAMED_GROUP_RE = re.compile(r"\(\?P?<([A-Za-z_]\w*)>|\(\?'([A-Za-z_]\w*)'")


def collect_user_vars(stmts) -> frozenset:
    """First pass: every variable made by `set`, `map` or a regex's named capture, so templates
    anywhere can use them (the rewrite/map engines store them in ctx.vars)."""
    names: set[str] = set()
    stack = list(stmts)
    while stack:
        st = stack.pop()
        for token in (st.directive, *st.args):
            if "(?" in token:
                names.update(a or b for a, b in _NAMED_GROUP_RE.findall(token))
        if st.directive in ("set", "auth_request_set") and st.args \
                and st.args[0].startswith("$"):
            names.add(st.args[0][1:])
        elif st.directive in ("map", "split_clients", "geo") and st.args \
                and st.args[-1].startswith("$"):
            names.add(st.args[-1][1:])
        if st.block and st.directive not in ("types", "geo", "split_clients"):
            stack.extend(st.block)
    known = registry()
    return frozenset(n for n in names if n and n not in known)


def compile_config(stmts, prefix: str, conf_file: str) -> Config:
    c = Compiler(prefix, collect_user_vars(stmts))
    c.conf_dir = os.path.dirname(conf_file)
    tls.new_generation()
    main = c.level("main", None, None)
    c.walk(stmts, main)
    if not c.events_seen:
        raise ConfigError('no "events" section in configuration')
    if c.unknown_variables:
        raise c.unknown_variables[0]
    cache_config.finish(c)
    zones = c.zones.finish()
    c.upstream_zones.finish(c.upstreams.values())
    http_lv = c.http or c.level("http", main, None)
    http_vals = merge(c.http_base(), http_lv, handler=False)
    servers = c.build_servers(http_vals)
    listens = by_listen(servers)
    main_conf = c.build_main(main)
    cache_config.create_paths(c, main_conf)
    http_conf = loc_conf(c, http_vals, http_lv)
    return Config(main=main_conf, servers=servers, by_listen=listens,
                  tls_listens=tls.build_listens(listens),
                  upstreams=dict(c.upstreams), implicit=dict(c.implicit), maps=c.maps, user_vars=c.user_vars,
                  log_formats=dict(c.log_formats), prefix=prefix, conf_file=conf_file,
                  http_conf=http_conf, zones=zones, access_logs=tuple(c.log_slots),
                  stub_status=c.uses_stats, open_files=tuple(c.open_files),
                  limit_rate_used=c.limit_rate_used, temp_paths=tuple(c.temp_paths.values()),
                  cache_paths=cache_config.cache_paths(c))


def by_listen(servers) -> dict:
    """listen key -> (default server, servers on it in config order)."""
    groups: dict = {}
    defaults: dict = {}
    for srv in servers:
        for lst in srv.listens:
            group = groups.setdefault(lst.key, [])
            if not any(s is srv for s in group):
                group.append(srv)
            if lst.default_server:
                defaults.setdefault(lst.key, srv)
    return {key: (defaults.get(key, group[0]), tuple(group)) for key, group in groups.items()}
