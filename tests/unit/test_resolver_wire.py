"""The resolver's sans-IO parts: DNS queries as nginx builds them, responses checked in nginx's
order with its error wording, the answer walk, address export order, and `resolver` parsing."""
import struct

import pytest

from ngate.resolver import wire
from ngate.resolver.client import Node, export
from tests.harness.dns_server import Answer, build_answer
from tests.unit._config_helpers import load_http, nginx_error, ngate_error, write_conf


def question(name="app.test", qtype=wire.A, ident=0x1234):
    return wire.query(ident, wire.encode_name(name), qtype)


def test_query_bytes():
    q = question()
    assert q == (struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x03app\x04test\x00"
                 + struct.pack("!HH", 1, 1))


@pytest.mark.parametrize("name", ["", "a..b", ".a", "x" * 256 + ".test"])
def test_names_nginx_declines(name):
    assert wire.encode_name(name) is None


def test_response_parsed():
    buf = build_answer(question(), Answer(a=["10.0.0.1", "10.0.0.2"], cname="x.test", ttl=7), False)
    r = wire.check_response(buf, False)
    assert (r.ident, r.code, r.trunc, r.qname, r.qtype, r.nan) == (0x1234, 0, 0, "app.test", 1, 3)
    addrs, cname_at, ttl, others = wire.read_answers(buf, r)
    assert addrs == ["10.0.0.1", "10.0.0.2"] and ttl == 7 and others == []
    assert wire.copy_name(buf, cname_at) == "x.test"


def test_question_name_lower_cased():
    buf = build_answer(question("App.TEST"), Answer(a=["10.0.0.1"]), False)
    assert wire.check_response(buf, False).qname == "app.test"


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:11], "short DNS response"),
    (lambda b: b[:2] + b"\x01\x00" + b[4:], "invalid UDP DNS response 4660 fl:0100"),
    (lambda b: b[:4] + b"\x00\x02" + b[6:], "invalid number of questions in DNS response"),
    (lambda b: b[:12] + b"\xc0\x0c" + b[14:], "unexpected compression pointer in DNS response"),
    (lambda b: b[:-16], "short DNS response"),
])
def test_bad_responses(mutate, message):
    buf = build_answer(question(), Answer(a=["10.0.0.1"]), False)
    with pytest.raises(wire.DnsProblem, match="^" + message + "$"):
        wire.check_response(mutate(buf), False)


def test_truncated_over_tcp_is_invalid():
    buf = build_answer(question(), Answer(a=["10.0.0.1"], tc=True), False)
    assert wire.check_response(buf, False).trunc
    with pytest.raises(wire.DnsProblem, match="invalid TCP DNS response"):
        wire.check_response(buf, True)


def test_error_codes():
    buf = build_answer(question(), Answer(rcode=1), False)
    with pytest.raises(wire.DnsError) as e:
        wire.check_response(buf, False)
    assert e.value.args == (1, 0x1234)
    r = wire.check_response(build_answer(question(), Answer(rcode=3), False), False)
    assert r.code == 3 and wire.strerror(3) == "Host not found"
    assert wire.strerror(wire.TIMEDOUT) == "Operation timed out" and wire.strerror(9) == "Unknown error"


def test_a_record_to_aaaa_question_is_invalid():
    buf = bytearray(build_answer(question(qtype=wire.AAAA), Answer(aaaa=["::1"]), False))
    r = wire.check_response(bytes(buf), False)
    assert wire.read_answers(bytes(buf), r)[0] == ["::1"]
    at = r.ans + 2                  # the answer's type, after its 2-byte owner pointer
    buf[at:at + 2] = b"\x00\x01"
    with pytest.raises(wire.DnsProblem, match="unexpected A record in DNS response"):
        wire.read_answers(bytes(buf), r)


def test_compression_loop():
    buf = b"\x00" * 12 + b"\xc0\x0c"
    with pytest.raises(wire.DnsProblem, match="compression pointers loop|name is out"):
        wire.copy_name(buf, 12)


def test_export_order_and_rotation():
    node = Node("x")
    node.addrs, node.addrs6 = ["1.1.1.1", "2.2.2.2"], ["::1"]
    assert export(node, False) == ("1.1.1.1", "2.2.2.2", "::1")
    seen = {export(node, True) for _ in range(200)}
    assert all(sorted(s) == sorted(export(node, False)) for s in seen) and len(seen) > 1


@pytest.mark.parametrize("args", [
    "127.0.0.1 ipv4=off",           # ipv4= came in nginx 1.23.1
    "127.0.0.1 status_zone=z",      # commercial
    "valid=5s",
    "127.0.0.1 valid=abc",
    "127.0.0.1 ipv6=maybe",
    "127.0.0.1:99999",
    "127.0.0.1:53/x",
    "no-such-host.invalid",
])
def test_resolver_directive_errors_as_nginx(tmp_path, args):
    conf = write_conf(tmp_path, f"resolver {args};\nserver {{ listen 127.0.0.1:8080; }}")
    ours = ngate_error(conf, str(tmp_path))
    assert ours != "OK" and ours == nginx_error(conf, str(tmp_path))


def test_resolver_duplicate(tmp_path):
    conf = write_conf(tmp_path, "resolver 127.0.0.1; resolver 127.0.0.2;")
    assert ngate_error(conf, str(tmp_path)) == nginx_error(conf, str(tmp_path)) \
        == f'"resolver" directive is duplicate in {conf}:3'


def test_resolver_directive_compiled_and_inherited(tmp_path):
    cfg = load_http(tmp_path, "resolver 127.0.0.1:5353 [::1] valid=10s ipv6=off; resolver_timeout 2s;"
                    "server { listen 127.0.0.1:8080; location / { } "
                    "location /o { resolver 10.0.0.1; } }")
    top, other = (loc.conf for loc in cfg.servers[0].locations)
    assert [s[2] for s in top.resolver.servers] == ["127.0.0.1:5353", "[::1]:53"]
    assert (top.resolver.valid, top.resolver.ipv6, top.resolver_timeout) == (10, False, 2.0)
    assert [s[2] for s in other.resolver.servers] == ["10.0.0.1:53"]
    assert other.resolver.ipv6 and other.resolver_timeout == 2.0
