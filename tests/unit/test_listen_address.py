"""`listen`'s address as nginx's ngx_parse_url reads it (src/core/ngx_inet.c, u.listen set):
port ranges (`8000-8009`: one listen per port), bare ports, `*`, IPv6, host names, unix sockets,
and the error of every malformed form, word for word as nginx 1.22.1 says it."""
from __future__ import annotations

import os

import pytest

from ngate.config.servers import inet_addr, listen_addresses, parse_listen
from ngate.errors import ConfigError
from tests.unit._config_helpers import (load_http, nginx_available, nginx_error, ngate_error,
                                        write_conf)


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8182-8183", [("127.0.0.1", 8182), ("127.0.0.1", 8183)]),
    ("8182-8184", [("0.0.0.0", 8182), ("0.0.0.0", 8183), ("0.0.0.0", 8184)]),
    ("*:8182-8183", [("0.0.0.0", 8182), ("0.0.0.0", 8183)]),
    ("[::1]:8182-8183", [("::1", 8182), ("::1", 8183)]),
    ("[0:0::1]:8182", [("::1", 8182)]),            # the address as getsockname() gives it
    ("[::]:80", [("::", 80)]),
    ("[::1]", [("::1", 80)]),
    ("127.0.0.1:8182-8182", [("127.0.0.1", 8182)]),
    ("127.0.0.1:08182-08183", [("127.0.0.1", 8182), ("127.0.0.1", 8183)]),
    ("1-1", [("0.0.0.0", 1)]),
    ("65535", [("0.0.0.0", 65535)]),
    ("127.0.0.1", [("127.0.0.1", 80)]),
    ("010.0.0.1:81", [("10.0.0.1", 81)]),          # ngx_inet_addr: decimal, not octal
    ("127.1:80", [("127.0.0.1", 80)]),             # not four octets: getaddrinfo reads it
    ("...:8182", [("0.0.0.0", 8182)]),             # empty octets are 0
])
def test_accepted_addresses(text, expected):
    got = listen_addresses(text, None)
    assert [(host, port) for host, port, unix in got] == expected
    assert all(unix is None for _, _, unix in got)


def test_localhost_range_is_every_address_and_port():
    import socket as s
    addrs = [i[4][0] for i in s.getaddrinfo("localhost", None, s.AF_UNSPEC, s.SOCK_STREAM, 0,
                                             s.AI_ADDRCONFIG)]
    assert "127.0.0.1" in addrs
    assert listen_addresses("localhost:8182-8183", None) == \
        [(a, p, None) for a in addrs for p in (8182, 8183)]


@pytest.mark.parametrize("text, path", [
    ("unix:/run/a-1.sock", "/run/a-1.sock"),
    ("UNIX:/run/a.sock", "/run/a.sock"),        # the prefix is case-insensitive (ngx_strncasecmp)
])
def test_unix_addresses(text, path):
    assert listen_addresses(text, None) == [("", 0, path)]


def test_inet_addr_is_ngx_inet_addr():
    assert inet_addr("127.0.0.1") == "127.0.0.1"
    assert inet_addr("001.002.003.004") == "1.2.3.4"
    assert inet_addr("1..2.3") == "1.0.2.3"
    assert inet_addr("1.2.3") is None
    assert inet_addr("1.2.3.256") is None
    assert inet_addr("1.2.3.4.5") is None
    assert inet_addr("a.b.c.d") is None


def test_every_port_of_a_range_gets_the_parameters():
    listens, sockopts = parse_listen(["127.0.0.1:8182-8184", "default_server", "backlog=7",
                                      "reuseport"], None)
    assert [lst.port for lst in listens] == [8182, 8183, 8184]
    assert all(lst.default_server and lst.backlog == 7 and lst.reuseport and lst.options
               for lst in listens)
    assert sockopts


# (server block body, message); the server is on line 3 of the file
ERRORS = [
    ("listen 127.0.0.1:8183-8182;", 'invalid port range in "127.0.0.1:8183-8182"'),
    ("listen 8183-8182;", 'invalid port range in "8183-8182"'),
    ("listen [::1]:8183-8182;", 'invalid port range in "[::1]:8183-8182"'),
    ("listen 127.0.0.1:0-8182;", 'invalid port in "127.0.0.1:0-8182"'),
    ("listen 127.0.0.1:8182-0;", 'invalid port in "127.0.0.1:8182-0"'),
    ("listen 127.0.0.1:8182-65536;", 'invalid port in "127.0.0.1:8182-65536"'),
    ("listen 127.0.0.1:8182-;", 'invalid port in "127.0.0.1:8182-"'),
    ("listen 127.0.0.1:-8182;", 'invalid port in "127.0.0.1:-8182"'),
    ("listen 127.0.0.1:8182-8183-8184;", 'invalid port in "127.0.0.1:8182-8183-8184"'),
    ("listen [::1]:8182-x;", 'invalid port in "[::1]:8182-x"'),
    ("listen 0-8182;", 'invalid port in "0-8182"'),
    ("listen 8182-99999;", 'invalid port in "8182-99999"'),
    ("listen 0;", 'invalid port in "0"'),
    ("listen 65536;", 'invalid port in "65536"'),
    ("listen 9223372036854775807;", 'invalid port in "9223372036854775807"'),
    ("listen []:0;", 'invalid port in "[]:0"'),
    ("listen ::1:80;", 'invalid port in "::1:80"'),       # split at the first colon
    # not a number before the dash (or past ngx_atoi's range): a host name
    ("listen 8182-a;", 'host not found in "8182-a"'),
    ("listen a-8182;", 'host not found in "a-8182"'),
    ("listen -8182;", 'host not found in "-8182"'),
    ("listen 9223372036854775808;", 'host not found in "9223372036854775808"'),
    ("listen :80;", 'no host in ":80"'),
    ("listen [];", 'no host in "[]"'),
    ("listen [::1]x;", 'invalid host in "[::1]x"'),
    ("listen [::1:80;", 'invalid host in "[::1:80"'),
    ("listen [::1]:80/x;", 'invalid host in "[::1]:80/x"'),
    ("listen 127.0.0.1:80/x;", 'invalid host in "127.0.0.1:80/x"'),
    ("listen 127.0.0.1?;", 'invalid host in "127.0.0.1?"'),
    ("listen [::g];", 'invalid IPv6 address in "[::g]"'),
    ("listen unix:;", 'no path in the unix domain socket in "unix:"'),
    ("listen unix:/" + "a" * 107 + ";",
     'too long path in the unix domain socket in "unix:/' + "a" * 107 + '"'),
]

# errors of the checks per address: each port of a range is an address of its own
DUPLICATES = [
    ("server { listen 127.0.0.1:8182-8183; listen 127.0.0.1:8183; }",
     "a duplicate listen 127.0.0.1:8183"),
    ("server { listen [::1]:8182-8183; listen [0::1]:8183; }", "a duplicate listen [::1]:8183"),
    ("server { listen 8182-8183; listen *:8182; }", "a duplicate listen 0.0.0.0:8182"),
    ("server { listen 127.0.0.1:8182-8183 default_server; }\n"
     "server { listen 127.0.0.1:8183 default_server; }",
     "a duplicate default server for 127.0.0.1:8183"),
    ("server { listen 127.0.0.1:8182-8183 backlog=10; }\n"
     "server { listen 127.0.0.1:8183 backlog=5; }",
     "duplicate listen options for 127.0.0.1:8183"),
]


def _need_nginx():
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI")
        pytest.skip("nginx is not installed")


@pytest.mark.parametrize("body, message", ERRORS)
def test_address_errors(tmp_path, body, message):
    conf = write_conf(tmp_path, f"server {{ {body} }}")
    assert ngate_error(conf, str(tmp_path)) == \
        f'{message} of the "listen" directive in {conf}:3'


@pytest.mark.parametrize("body, message", ERRORS)
def test_nginx_says_the_same_of_addresses(tmp_path, body, message):
    _need_nginx()
    conf = write_conf(tmp_path, f"server {{ {body} }}")
    assert nginx_error(conf, str(tmp_path)) == \
        f'{message} of the "listen" directive in {conf}:3'


@pytest.mark.parametrize("http, message", DUPLICATES)
def test_duplicates_per_port(tmp_path, http, message):
    conf = write_conf(tmp_path, http)
    line = 3 + http.count("\n")
    assert ngate_error(conf, str(tmp_path)) == f"{message} in {conf}:{line}"


@pytest.mark.parametrize("http, message", DUPLICATES)
def test_nginx_says_the_same_of_duplicates(tmp_path, http, message):
    _need_nginx()
    conf = write_conf(tmp_path, http)
    line = 3 + http.count("\n")
    assert nginx_error(conf, str(tmp_path)) == f"{message} in {conf}:{line}"


def test_range_feeds_every_port_its_servers(tmp_path):
    """A range is one listen per port: each port has its own default server and server list."""
    config = load_http(tmp_path, """
        server { listen 127.0.0.1:8182-8184; server_name a; }
        server { listen 127.0.0.1:8183 default_server; server_name b; }
    """)
    by = config.by_listen
    assert sorted(by) == [("127.0.0.1", 8182), ("127.0.0.1", 8183), ("127.0.0.1", 8184)]
    a, b = config.servers
    assert by[("127.0.0.1", 8182)] == (a, (a,))
    assert by[("127.0.0.1", 8183)] == (b, (a, b))
    assert by[("127.0.0.1", 8184)] == (a, (a,))


def test_bad_range_is_a_config_error_with_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_http(tmp_path, "server {\n listen 9-8;\n}")
    assert str(e.value).endswith(f'of the "listen" directive in {tmp_path}/nginx.conf:4')
    assert e.value.message == 'invalid port range in "9-8" of the "listen" directive'


def test_socket_made_as_the_listen_that_sets_options(tmp_path):
    """nginx copies a later listen's options over the address's only when it sets some: the
    socket's reuseport/backlog/ipv6only are those of the one listen with options, else the
    first listen's."""
    from ngate.supervisor.listeners import config_listens
    config = load_http(tmp_path, """
        server { listen 127.0.0.1:8182; listen 127.0.0.1:8183 backlog=9; }
        server { listen 127.0.0.1:8182 reuseport backlog=7; listen 127.0.0.1:8183 default_server; }
    """)
    found = config_listens(config)
    first, second = config.servers
    assert found[("127.0.0.1", 8182)] is second.listens[0]
    assert found[("127.0.0.1", 8182)].reuseport and found[("127.0.0.1", 8182)].backlog == 7
    assert found[("127.0.0.1", 8183)] is first.listens[1]


# parameters: (listen arguments, message); nginx 1.22.1 on Linux reads them this way
PARAMETER_ERRORS = [
    ("127.0.0.1:8182 ipv6only=x", 'invalid parameter "ipv6only=x"'),
    ("127.0.0.1:8182 ipv6only=ON", 'invalid parameter "ipv6only=ON"'),
    ("127.0.0.1:8182 ipv6only=ox", 'invalid ipv6only flags "ox"'),
    ("127.0.0.1:8182 setfib=1", 'invalid parameter "setfib=1"'),       # FreeBSD's
    ("127.0.0.1:8182 fastopen=x", 'invalid fastopen "fastopen=x"'),
    ("127.0.0.1:8182 fastopen=", 'invalid fastopen "fastopen="'),
    ("127.0.0.1:8182 backlog=0", 'invalid backlog "backlog=0"'),
    ("127.0.0.1:8182 rcvbuf=1x", 'invalid rcvbuf "rcvbuf=1x"'),
    ("127.0.0.1:8182 sndbuf=1g", 'invalid sndbuf "sndbuf=1g"'),
    ("127.0.0.1:8182 so_keepalive=x", 'invalid so_keepalive value: "x"'),
    ("127.0.0.1:8182 so_keepalive=On", 'invalid so_keepalive value: "On"'),
    ("127.0.0.1:8182 so_keepalive=::", 'invalid so_keepalive value: "::"'),
    ("127.0.0.1:8182 so_keepalive=0::", 'invalid so_keepalive value: "0::"'),
    ("127.0.0.1:8182 so_keepalive=1:2:3:4", 'invalid so_keepalive value: "1:2:3:4"'),
    ("127.0.0.1:8182 so_keepalive=1ms", 'invalid so_keepalive value: "1ms"'),
    ("127.0.0.1:8182 quic", 'invalid parameter "quic"'),                # nginx 1.25's
    ("127.0.0.1:8182 SSL", 'invalid parameter "SSL"'),
    ("127.0.0.1:8182 default_server=1", 'invalid parameter "default_server=1"'),
    # socket options, `bind` included, count as options of the address; accept_filter does not
    ("127.0.0.1:8182 bind; } server { listen 127.0.0.1:8182 backlog=5",
     "duplicate listen options for 127.0.0.1:8182"),
    ("127.0.0.1:8182 deferred; } server { listen 127.0.0.1:8182 so_keepalive=on",
     "duplicate listen options for 127.0.0.1:8182"),
    ("127.0.0.1:8182-8183 accept_filter=x; } server { listen 127.0.0.1:8183 backlog=5", "OK"),
]


@pytest.mark.parametrize("args, message", PARAMETER_ERRORS)
def test_parameter_errors(tmp_path, args, message):
    conf = write_conf(tmp_path, f"server {{ listen {args}; }}")
    assert ngate_error(conf, str(tmp_path)) == (message if message == "OK" else
                                                f"{message} in {conf}:3")


@pytest.mark.parametrize("args, message", [p for p in PARAMETER_ERRORS if p[1] != "OK"])
def test_nginx_says_the_same_of_parameters(tmp_path, args, message):
    _need_nginx()
    conf = write_conf(tmp_path, f"server {{ listen {args}; }}")
    assert nginx_error(conf, str(tmp_path)) == f"{message} in {conf}:3"


@pytest.mark.parametrize("arg, field, value", [
    ("so_keepalive=on", "so_keepalive", (True, 0, 0, 0)),
    ("so_keepalive=off", "so_keepalive", (False, 0, 0, 0)),
    ("so_keepalive=30m::10", "so_keepalive", (True, 1800, 0, 10)),
    ("so_keepalive=:5", "so_keepalive", (True, 0, 5, 0)),
    ("sndbuf=32k", "sndbuf", 32768),
    ("rcvbuf=1m", "rcvbuf", 1048576),
    ("fastopen=7", "fastopen", 7),
    ("deferred", "deferred", True),
    ("ipv6only=off", "ipv6only", False),
    ("bind", "bind", True),
])
def test_parameter_values(arg, field, value):
    (lst,), sockopts = parse_listen(["127.0.0.1:8182", arg], None)
    assert getattr(lst, field) == value
    assert sockopts and lst.options and lst.bind


def test_wildcard_socket_serves_the_unbound_addresses_of_its_port(tmp_path):
    """nginx's ngx_http_init_listening: beside a wildcard listen of a port (per family), an
    address gets no socket of its own unless it says `bind` or sets a socket option."""
    from ngate.server.wildcard import riders
    from ngate.supervisor.listeners import config_listens
    config = load_http(tmp_path, """
        server { listen 8182-8183; listen [::]:8182; listen 127.0.0.1:8184; }
        server { listen 127.0.0.1:8182; listen 127.0.0.2:8182 bind; listen 127.0.0.3:8183;
                 listen [::1]:8182; listen [::1]:8183; listen 127.0.0.4:8183 backlog=5; }
    """)
    bound = config_listens(config)
    assert sorted(bound) == [("0.0.0.0", 8182), ("0.0.0.0", 8183), ("127.0.0.1", 8184),
                             ("127.0.0.2", 8182), ("127.0.0.4", 8183), ("::", 8182),
                             ("::1", 8183)]
    keys = list(config.by_listen)
    assert riders(keys, bound, ("0.0.0.0", 8182)) == [("127.0.0.1", 8182)]
    assert riders(keys, bound, ("0.0.0.0", 8183)) == [("127.0.0.3", 8183)]
    assert riders(keys, bound, ("::", 8182)) == [("::1", 8182)]
    assert riders(keys, bound, ("127.0.0.1", 8184)) == []


def test_a_name_listens_on_every_address(monkeypatch):
    """nginx's ngx_inet_resolve_host: every IPv4 and IPv6 address of the name, in the
    resolver's order, each with every port of the range."""
    import socket as s

    def fake(host, port, family=0, type=0, proto=0, flags=0):
        assert host == "both.test" and flags & s.AI_ADDRCONFIG
        return [(s.AF_INET6, s.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
                (s.AF_INET, s.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
    monkeypatch.setattr(s, "getaddrinfo", fake)
    assert listen_addresses("both.test:8182-8183", None) == [
        ("::1", 8182, None), ("::1", 8183, None),
        ("127.0.0.1", 8182, None), ("127.0.0.1", 8183, None)]
