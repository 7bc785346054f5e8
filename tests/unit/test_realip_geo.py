"""Sans-IO parts of realip, PROXY protocol, geo and split_clients, and their config errors
(checked against nginx -t)."""
from __future__ import annotations

import struct

import pytest

from ngate.realip import addr as A
from ngate.routing.geo import GeoBuilder
from ngate.routing.split_clients import atofp, murmur_hash2
from ngate.server import proxy_protocol as pp
from tests.unit._config_helpers import nginx_error, ngate_error, write_conf

# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize("text,value", [
    ("192.0.2.1", 0xC0000201), ("01.2.3.4", 0x01020304), ("1..2.3", 0x01000203),
    ("256.0.0.1", None), ("1.2.3", None), ("1.2.3.4.5", None), ("", None), ("1.2.3.a", None),
])
def test_inet_addr(text, value):
    assert A.inet_addr(text) == value


@pytest.mark.parametrize("text,result", [
    ("192.0.2.1", ((4, 0xC0000201), 0)),
    ("192.0.2.1:80", ((4, 0xC0000201), 80)),
    ("[2001:db8::1]:443", ((6, 0x20010DB8 << 96 | 1), 443)),
    ("2001:db8::1", ((6, 0x20010DB8 << 96 | 1), 0)),
    ("192.0.2.1:0", None), ("192.0.2.1:65536", None), ("[::1]", None), ("[::1]:", None),
    ("host:80", None), ("", None),
])
def test_parse_addr_port(text, result):
    assert A.parse_addr_port(text) == result


@pytest.mark.parametrize("text,cidr,exact", [
    ("10.0.0.0/8", (4, 0x0A000000, 0xFF000000), True),
    ("10.0.0.1/8", (4, 0x0A000000, 0xFF000000), False),
    ("0.0.0.0/0", (4, 0, 0), True),
    ("192.0.2.1", (4, 0xC0000201, 0xFFFFFFFF), True),
    ("2001:db8::/32", (6, 0x20010DB8 << 96, ((1 << 32) - 1) << 96), True),
])
def test_ptocidr(text, cidr, exact):
    assert A.ptocidr(text) == (cidr, exact)


@pytest.mark.parametrize("text", ["10.0.0.0/33", "2001:db8::/129", "10.0.0.0/x", "nope/8"])
def test_ptocidr_invalid(text):
    assert A.ptocidr(text) is None


TRUSTED = [A.ptocidr("127.0.0.1")[0], A.ptocidr("10.0.1.0/24")[0]]
LOOPBACK = (4, 0x7F000001)


@pytest.mark.parametrize("values,recursive,client", [
    (["192.0.2.1"], False, "192.0.2.1"),
    (["10.0.0.1, 192.0.2.1"], False, "192.0.2.1"),
    (["192.0.2.1, 10.0.1.1, 127.0.0.1"], False, "127.0.0.1"),
    (["10.0.1.1, 192.0.2.1, 127.0.0.1"], True, "192.0.2.1"),
    (["10.0.1.1, 10.0.1.2"], True, "10.0.1.1"),         # all trusted: the first one
    (["192.0.2.1", "127.0.0.1, 10.0.1.1"], False, "10.0.1.1"),
    (["10.0.1.1", "192.0.2.1", "127.0.0.1"], True, "192.0.2.1"),
    (["junk"], False, None),
    (["192.0.2.1, junk"], True, None),
    (["junk, 10.0.1.9"], True, "10.0.1.9"),
    ([""], False, None),
    (["::ffff:127.0.0.1, 192.0.2.1"], True, "192.0.2.1"),   # a mapped address is trusted as v4
])
def test_forwarded_addr(values, recursive, client):
    found = A.forwarded_addr(LOOPBACK, values, TRUSTED, recursive)
    assert (A.to_text(found[0]) if found else None) == client


def test_forwarded_addr_untrusted_peer():
    assert A.forwarded_addr((4, 0xC0000263), ["192.0.2.1"], TRUSTED, False) is None


def test_unix_cidr_matches_unix_clients_only():
    assert A.cidr_match(A.UNIX, [(0, 0, 0)])
    assert not A.cidr_match(LOOPBACK, [(0, 0, 0)])


# ---------------------------------------------------------------- PROXY protocol

SIG = pp.V2_SIGNATURE
TCP4 = SIG + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 192, 0, 2, 2]) + struct.pack(">HH", 1, 2)


@pytest.mark.parametrize("data,status,header,consumed", [
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nGET", pp.DONE,
     pp.ProxyHeader("192.0.2.1", 1, "192.0.2.2", 2), 36),
    (b"PROXY TCP6 ::1 ::2 65535 0\r\n", pp.DONE, pp.ProxyHeader("::1", 65535, "::2", 0), 28),
    (b"PROXY UNKNOWN\r\n", pp.DONE, None, 15),
    (b"PROXY UNKNOWN whatever\r\nGET", pp.DONE, None, 24),
    (TCP4 + b"GET", pp.DONE, pp.ProxyHeader("192.0.2.1", 1, "192.0.2.2", 2), 28),
    (SIG + b"\x20\x00\x00\x00", pp.DONE, None, 16),                     # LOCAL
    (SIG + b"\x21\x12\x00\x0c" + bytes(12), pp.DONE, None, 28),         # DGRAM
    (SIG + b"\x21\x31\x00\x04abcd", pp.DONE, None, 20),                 # AF_UNIX
])
def test_proxy_header(data, status, header, consumed):
    assert pp.parse(data)[:3] == (status, header, consumed)


@pytest.mark.parametrize("data", [b"", b"P", b"PROXY", b"PROXY TCP4 192.0.2.1 192.",
                                  b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r", b"PROXY UNKN",
                                  SIG[:5], SIG + b"\x21\x11\x00", TCP4[:-1]])
def test_proxy_header_needs_more(data):
    """Every prefix of a valid header waits for more bytes."""
    assert pp.parse(data)[0] == pp.NEED_MORE


def test_every_prefix_of_a_header_waits():
    for header in (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n", TCP4):
        for n in range(len(header)):
            assert pp.parse(header[:n])[0] == pp.NEED_MORE, header[:n]


@pytest.mark.parametrize("data,message", [
    (b"GET / HTTP/1.1\r\n", 'broken header: "GET / HTTP/1.1\r\n"'),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n", None),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n", None),
    (b"PROXY TCP4 192.0.2.x 192.0.2.2 1 2\r\n", None),
    (b"PROXY TCP7 192.0.2.1 192.0.2.2 1 2\r\n", None),
    (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX", None),
    (b"PROXY TCP4 " + b"1" * 2000, None),
    (SIG + b"\x11\x11\x00\x00", "unknown PROXY protocol version: 1"),
    (SIG + b"\x21\x11\x00\x04abcd", ""),          # an address block too short: closed silently
])
def test_proxy_header_broken(data, message):
    status, header, consumed, text = pp.parse(data)
    assert status == pp.BROKEN
    assert text == (message if message is not None else f'broken header: "{data.decode("latin-1")}"')


# ---------------------------------------------------------------- geo


def geo(*lines: str):
    g = GeoBuilder(None)
    for line in lines:
        g.add(line.split(), "test:1")
    return g.build()


class _Conn:
    def __init__(self, remote_addr: str) -> None:
        self.remote_addr = remote_addr


class _Ctx:
    """The smallest request a geo lookup reads: the client's address and the headers."""

    def __init__(self, remote_addr: str) -> None:
        self.conn = _Conn(remote_addr)
        self.headers = []


def lookup(g, text: str) -> str:
    return g.evaluate(_Ctx(text))


def test_geo_longest_prefix():
    g = geo("default d", "10.0.0.0/8 ten", "10.1.0.0/16 ten-one", "10.1.2.3 host",
            "2001:db8::/32 doc", "::ffff:0:0/96 never")
    assert [lookup(g, a) for a in ("10.9.9.9", "10.1.9.9", "10.1.2.3", "11.0.0.1",
                                   "2001:db8::5", "::1", "::ffff:10.1.2.3")] == \
        ["ten", "ten-one", "host", "d", "doc", "d", "host"]


def test_geo_delete_and_duplicate():
    g = geo("10.0.0.0/8 a", "10.0.0.0/8 b", "10.1.0.0/16 c", "delete 10.1.0.0/16")
    assert lookup(g, "10.1.0.1") == "b"
    assert lookup(g, "9.0.0.1") == ""


RANGES = [
    # (entries, address, value): nginx's add/insert/split cases of ngx_http_geo_add_range
    (["127.0.0.1-127.0.0.255 lo", "127.0.0.0-127.0.0.0 t"], "127.0.0.0", "t"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.1-127.0.0.2 t2", "127.0.0.1-127.0.0.1 lo"], "127.0.0.1", "lo"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.1-127.0.0.2 t2", "127.0.0.1-127.0.0.1 lo"], "127.0.0.2", "t2"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.1-127.0.0.2 t2", "127.0.0.1-127.0.0.1 lo"], "127.0.0.3", "t"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.0-127.0.0.1 lo"], "127.0.0.1", "lo"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.0-127.0.0.1 lo"], "127.0.0.2", "t"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.1-127.0.0.255 lo"], "127.0.0.0", "t"),
    (["127.0.0.0-127.0.0.255 t", "127.0.0.1-127.0.0.255 lo"], "127.0.0.200", "lo"),
    (["10.10.3.0-10.11.2.255 foo", "10.12.3.0-10.13.2.255 foo2",
      "delete 10.10.3.0-10.11.2.255"], "10.11.2.1", "default"),
    (["10.10.3.0-10.11.2.255 foo", "10.12.3.0-10.13.2.255 foo2"], "10.13.2.1", "foo2"),
    (["127.0.0.0-127.1.0.0 lo", "delete 127.0.0.0-127.1.0.0"], "127.0.200.1", "default"),
    (["0.0.0.0-255.255.255.255 all"], "255.255.255.255", "all"),
]


@pytest.mark.parametrize("entries,address,value", RANGES)
def test_geo_ranges(entries, address, value):
    g = geo("ranges", "default default", *entries)
    assert g._range(A.parse_addr(address)) == value


def test_geo_range_overlap_is_an_error():
    with pytest.raises(Exception, match=r'range "127.0.0.2-127.0.1.0" overlaps "127.0.0.0-127.0.0.255"'):
        geo("ranges", "127.0.0.0-127.0.0.255 a", "127.0.0.2-127.0.1.0 b")


# ---------------------------------------------------------------- split_clients


@pytest.mark.parametrize("data,value", [
    # values of nginx's ngx_murmur_hash2 (seed 0)
    (b"", 0), (b"1", 1228156847), (b"2", 772897149), (b"abcde", 1594468574),
])
def test_murmur_hash2(data, value):
    assert murmur_hash2(data) == value


@pytest.mark.parametrize("text,value", [("51.2", 5120), ("10", 1000), ("0.5", 50), (".5", 50),
                                        ("33.33", 3333), ("1.234", None), ("1.2.3", None),
                                        ("x", None), ("", 0)])
def test_atofp(text, value):
    assert atofp(text, 2) == value


# ---------------------------------------------------------------- config errors, as nginx -t

CONFIG_ERRORS = [
    ("set_real_ip_from nosuchhost.invalid;", 'host not found in set_real_ip_from "nosuchhost.invalid"'),
    ("real_ip_header X-Real-IP; real_ip_header X-Forwarded-For;",
     '"real_ip_header" directive is duplicate'),
    ("real_ip_recursive maybe;",
     'invalid value "maybe" in "real_ip_recursive" directive, it must be "on" or "off"'),
    ("geo $a $b $c { }", 'invalid number of arguments in "geo" directive'),
    ("geo a { }", 'invalid variable name "a"'),
    ("geo $a { 10.0.0.0/33 x; }", 'invalid network "10.0.0.0/33"'),
    ("geo $a { default x y; }", "invalid number of the geo parameters"),
    ("geo $a { 10.0.0.0/8 x; ranges; }",
     'the "ranges" directive must be the first directive inside "geo" block'),
    ("geo $a { ranges; 10.0.0.1-10.0.0.0 x; }", 'invalid range "10.0.0.1-10.0.0.0"'),
    ("geo $a { ranges; 10.0.0.0/8 x; }", 'invalid range "10.0.0.0/8"'),
    ("geo $a { proxy nonsense; }", 'invalid network "nonsense"'),
    ("split_clients $a $b { 60% x; 50% y; }", "percent total is greater than 100%"),
    ("split_clients $a $b { 10 x; }", 'invalid percent value "10"'),
    ("split_clients $a $b { 0% x; }", 'invalid percent value "0%"'),
    ("split_clients $a b { 10% x; }", 'invalid variable name "b"'),
    ("server { listen 127.0.0.1:8080; stub_status; }", "OK"),
    ("server { listen 127.0.0.1:8080 proxy_protocol; location / { stub_status; } }", "OK"),
    ("stub_status;", '"stub_status" directive is not allowed here'),
]


@pytest.mark.parametrize("http,message", CONFIG_ERRORS)
def test_config_errors_as_nginx(tmp_path, http, message):
    conf = write_conf(tmp_path, http)
    got = ngate_error(conf, str(tmp_path))
    assert got.split(" in /")[0] == message
    assert nginx_error(conf, str(tmp_path)).split(" in /")[0] == message
