"""The geo module (ngx_http_geo_module): a variable whose value depends on the client address.

    geo [$source] $name { default v; CIDR v; delete CIDR; proxy CIDR; proxy_recursive;
                          ranges; A.B.C.D-E.F.G.H v; include file; }

Config time (GeoBuilder, driven by config/blocks.py) follows nginx entry by entry: duplicate
networks and ranges warn and the later value wins; `delete` removes exactly that network or
range; in `ranges` mode a new range splits the ranges it falls into (ngx_http_geo_add_range)
and a partial overlap is an error. `include` is expanded by the config reader.

Request time (Geo.evaluate): the address is $remote_addr (after realip) or the source
variable's value; with `proxy` addresses, a trusted client is replaced by the address in
X-Forwarded-For (the last one, or with proxy_recursive the first untrusted from the end).
An address that cannot be read (or a unix-socket client) is looked up as 255.255.255.255, as
nginx does. CIDR mode is a longest-prefix match (a table per prefix length, longest first);
ranges mode is nginx's table of /16 buckets. Values are plain strings, cached per request.
"""
from __future__ import annotations

from ngate.errors import ConfigError
from ngate.observability import error_log
from ngate.realip import addr as A

INADDR_NONE = (4, 0xFFFFFFFF)


class Geo:
    __slots__ = ("source", "proxies", "recursive", "ranges", "tables", "default", "volatile")

    def __init__(self, source, proxies, recursive, ranges, tables, default) -> None:
        self.source = source            # Template or None ($remote_addr)
        self.proxies = proxies          # tuple of CIDRs
        self.recursive = recursive
        self.ranges = ranges
        # CIDR mode: {4: ((prefix mask, {net: value}), ...), 6: (...)} longest prefix first;
        # ranges mode: {high 16 bits: ((start, end, value), ...)}
        self.tables = tables
        self.default = default          # ranges mode only
        self.volatile = False

    def evaluate(self, ctx) -> str:
        addr = self._addr(ctx)
        if self.ranges:
            return self._range(addr)
        addr = A.unmapped(addr)
        if addr[0] == 0:
            addr = INADDR_NONE
        family, value = addr
        for mask, nets in self.tables[family]:
            v = nets.get(value & mask)
            if v is not None:
                return v
        return ""

    def _addr(self, ctx):
        if self.source is None:
            addr = A.from_text(ctx.conn.remote_addr)
        else:
            addr = A.parse_addr(self.source.render(ctx))
            if addr is None:
                return INADDR_NONE
        if self.proxies:
            xff = [v.decode("latin-1") for n, v in ctx.headers if n.lower() == b"x-forwarded-for"]
            if xff:
                found = A.forwarded_addr(addr, xff, self.proxies, self.recursive)
                if found is not None:
                    addr = found[0]
        return addr

    def _range(self, addr) -> str:
        addr = A.unmapped(addr)
        n = addr[1] if addr[0] == 4 else 0xFFFFFFFF
        bucket = self.tables.get(n >> 16)
        if bucket:
            low = n & 0xFFFF
            for start, end, value in bucket:
                if start <= low <= end:
                    return value
        return self.default


class GeoBuilder:
    """Reads a geo block's entries in order (ngx_http_geo)."""

    def __init__(self, source) -> None:
        self.source = source
        self.ranges = False
        self.tree = False               # a CIDR entry was read ("ranges" must come first)
        self.recursive = False
        self.proxies: list = []
        self.nets = {4: {}, 6: {}}      # family -> {(net, mask): value}
        self.low: dict = {}             # ranges: high 16 bits -> [[start, end, value], ...]
        self.default = None

    def add(self, words: list, where) -> None:
        if len(words) == 1 and words[0] == "ranges":
            if self.tree:
                raise ConfigError('the "ranges" directive must be the first directive inside '
                                  '"geo" block', where)
            self.ranges = True
            return
        if len(words) == 1 and words[0] == "proxy_recursive":
            self.recursive = True
            return
        if len(words) != 2:
            raise ConfigError("invalid number of the geo parameters", where)
        key, value = words
        if key == "proxy":
            self.proxies.append(cidr_value(value, where))
        elif self.ranges:
            self._range_entry(key, value, where)
        else:
            self._cidr_entry(key, value, where)

    # ------------------------------------------------------------ CIDR mode

    def _cidr_entry(self, key: str, value: str, where) -> None:
        self.tree = True
        if key == "default":
            self._put((4, 0, 0), value, key, where)
            self._put((6, 0, 0), value, key, where)
            return
        net = value if key == "delete" else key
        family, addr, mask = cidr_value(net, where)
        if key == "delete":
            if self.nets[family].pop((addr, mask), None) is None:
                error_log.warn(f'no network "{net}" to delete in {where}')
            return
        self._put((family, addr, mask), value, net, where)

    def _put(self, cidr, value: str, net: str, where) -> None:
        family, addr, mask = cidr
        nets = self.nets[family]
        old = nets.get((addr, mask))
        if old is not None:
            error_log.warn(f'duplicate network "{net}", value: "{value}", old value: "{old}" '
                           f"in {where}")
        nets[(addr, mask)] = value

    # ------------------------------------------------------------ ranges mode

    def _range_entry(self, key: str, value: str, where) -> None:
        if key == "default":
            if self.default is not None:
                error_log.warn(f'duplicate default geo range value: "{value}", old value: '
                               f'"{self.default}" in {where}')
            self.default = value
            return
        net = value if key == "delete" else key
        first, dash, last = net.partition("-")
        start = A.inet_addr(first) if dash else None
        end = A.inet_addr(last) if dash else None
        if start is None or end is None or start > end:
            raise ConfigError(f'invalid range "{net}"', where)
        if key == "delete":
            if self._delete_range(start, end):
                error_log.warn(f'no address range "{net}" to delete in {where}')
            return
        self._add_range(start, end, value, net, where)

    def _add_range(self, start: int, end: int, value: str, net: str, where) -> None:
        """ngx_http_geo_add_range, bucket by bucket."""
        n = start
        while n <= end:
            h = n >> 16
            s = n & 0xFFFF if n == start else 0
            e = end & 0xFFFF if (n | 0xFFFF) > end else 0xFFFF
            a = self.low.setdefault(h, [])
            _insert(a, s, e, value, net, h, where)
            if h == 0xFFFF:
                break
            n = (n + 0x10000) & 0xFFFF0000

    def _delete_range(self, start: int, end: int) -> bool:
        """ngx_http_geo_delete_range: True when some part had no such range."""
        warn = False
        n = start
        while n <= end:
            h = n >> 16
            s = n & 0xFFFF if n == start else 0
            e = end & 0xFFFF if (n | 0xFFFF) > end else 0xFFFF
            a = self.low.get(h)
            if not a:
                warn = True
            else:
                for i, r in enumerate(a):
                    if r[0] == s and r[1] == e:
                        del a[i]
                        break
                    if i == len(a) - 1:
                        warn = True
            if h == 0xFFFF:
                break
            n = (n + 0x10000) & 0xFFFF0000
        return warn

    # ------------------------------------------------------------ result

    def build(self) -> Geo:
        proxies = tuple(self.proxies)
        if self.ranges:
            low = {h: tuple(tuple(r) for r in a) for h, a in self.low.items() if a}
            return Geo(self.source, proxies, self.recursive, True, low,
                       self.default if self.default is not None else "")
        tables = {}
        for family, width in ((4, 32), (6, 128)):
            nets = dict(self.nets[family])
            nets.setdefault((0, 0), "")         # nginx inserts an empty default last
            by_mask: dict = {}
            for (addr, mask), value in nets.items():
                by_mask.setdefault(mask, {})[addr] = value
            tables[family] = tuple(sorted(by_mask.items(), key=lambda kv: -kv[0]))
        return Geo(self.source, proxies, self.recursive, False, tables, "")


def _insert(a: list, s: int, e: int, value: str, net: str, h: int, where) -> None:
    """One /16 bucket's part of ngx_http_geo_add_range: the new range splits what it covers."""
    i = len(a)
    while i:
        i -= 1
        rs, re_, rv = a[i]
        if e < rs:
            continue
        if s > re_:
            a.insert(i + 1, [s, e, value])              # after this range
        elif s == rs and e == re_:
            error_log.warn(f'duplicate range "{net}", value: "{value}", old value: "{rv}" '
                           f"in {where}")
            a[i][2] = value
        elif s > rs and e < re_:                        # inside: split it
            a[i + 1:i + 1] = [[s, e, value], [e + 1, re_, rv]]
            a[i][1] = s - 1
        elif s == rs and e < re_:                       # same start: shift its start
            a.insert(i, [s, e, value])
            a[i + 1][0] = e + 1
        elif s > rs and e == re_:                       # same end: shift its end
            a.insert(i + 1, [s, e, value])
            a[i][1] = s - 1
        else:
            raise ConfigError(
                f'range "{net}" overlaps "{h >> 8}.{h & 0xFF}.{rs >> 8}.{rs & 0xFF}-'
                f'{h >> 8}.{h & 0xFF}.{re_ >> 8}.{re_ & 0xFF}"', where)
        return
    a.insert(0, [s, e, value])


def cidr_value(net: str, where):
    """ngx_http_geo_cidr_value: a CIDR (255.255.255.255 included), warning on low bits."""
    if net == "255.255.255.255":
        return (4, 0xFFFFFFFF, 0xFFFFFFFF)
    r = A.ptocidr(net)
    if r is None:
        raise ConfigError(f'invalid network "{net}"', where)
    cidr, exact = r
    if not exact:
        error_log.warn(f"low address bits of {net} are meaningless in {where}")
    return cidr
