"""Sans-IO FastCGI records and CGI response heads: bytes in, events out."""
import struct

import pytest

from ngate.fastcgi import records as fcgi
from ngate.fastcgi.cgi import HeadReader, parse_head


def _records(data: bytes):
    """(type, content) of every record in data; checks version, id and 8-byte padding."""
    out, pos = [], 0
    while pos < len(data):
        version, rtype, rid, n, pad = struct.unpack_from(">BBHHBx", data, pos)
        assert (version, rid, (n + pad) % 8) == (1, 1, 0)
        out.append((rtype, data[pos + 8:pos + 8 + n]))
        pos += 8 + n + pad
    assert pos == len(data)
    return out


def test_begin_request_role_and_keep_conn():
    assert _records(fcgi.begin_request(True)) == [(1, b"\x00\x01\x01" + bytes(5))]
    assert _records(fcgi.begin_request(False)) == [(1, b"\x00\x01\x00" + bytes(5))]


@pytest.mark.parametrize("name,value", [(b"A", b"1"), (b"QUERY_STRING", b""),
                                        (b"X" * 127, b"y" * 128), (b"LONG", b"v" * 70000)])
def test_params_lengths_round_trip(name, value):
    recs = _records(fcgi.encode_params([(name, value), (b"B", b"2")]))
    assert recs[-1] == (fcgi.PARAMS, b"")                    # the empty terminator
    assert all(t == fcgi.PARAMS and len(c) <= 65535 for t, c in recs)
    body = b"".join(c for _, c in recs)
    assert fcgi.decode_params(body) == [(name, value), (b"B", b"2")]
    assert body[0] == len(name) if len(name) < 128 else body[0] & 0x80


@pytest.mark.parametrize("size", [0, 1, 70000, 65535, 65536])
def test_params_with_what_goes_before_and_after(size):
    content = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    data = fcgi.params(content, b"BEFORE", b"AFTER")
    assert data.startswith(b"BEFORE") and data.endswith(b"AFTER")
    assert data[6:-5] == fcgi.params(content)
    recs = _records(data[6:-5])
    assert b"".join(c for _, c in recs) == content and recs[-1] == (fcgi.PARAMS, b"")
    assert all(t == fcgi.PARAMS and len(c) <= 65535 for t, c in recs)


def test_stdin_split_and_end():
    data = bytes(range(256)) * 600                           # 153600 bytes: three records
    recs = _records(fcgi.stdin(data) + fcgi.stdin_end())
    assert [len(c) for _, c in recs] == [65535, 65535, 22530, 0]
    assert b"".join(c for _, c in recs) == data
    assert fcgi.stdin(b"") == b""


def _response(*parts) -> bytes:
    out = b""
    for rtype, content in parts:
        out += fcgi.record(rtype, content)
    return out


def test_parser_events_byte_by_byte():
    wire = _response((fcgi.STDERR, b"warn\n"), (fcgi.STDOUT, b"Status: 200\r\n\r\nhi"),
                     (fcgi.STDOUT, b""), (fcgi.END_REQUEST, struct.pack(">IB3x", 3, 0)))
    p = fcgi.RecordParser()
    events = []
    for i in range(len(wire)):
        events += p.feed(wire[i:i + 1])
    # each STDOUT/STDERR event with the offset of its content's end in the bytes fed
    # ($upstream_response_length counts from the CGI head's end: padding and records after)
    assert events == [(fcgi.STDERR, b"warn\n", 13), (fcgi.STDOUT, b"Status: 200\r\n\r\nhi", 41),
                      (fcgi.END_REQUEST, 3, 0)]
    assert p.read == len(wire)
    assert p.done and p.feed(b"junk") == []


def test_parser_skips_other_ids_and_rejects_bad_version():
    other = struct.pack(">BBHHBx", 1, fcgi.STDOUT, 2, 1, 7) + b"x" + bytes(7)
    p = fcgi.RecordParser()
    assert p.feed(other + fcgi.record(fcgi.STDOUT, b"ok")) == [(fcgi.STDOUT, b"ok", 26)]
    with pytest.raises(ValueError):
        fcgi.RecordParser().feed(b"\x02" + bytes(7))


@pytest.mark.parametrize("head,status,reason", [
    (b"Content-Type: text/html", 200, None),
    (b"Status: 404 Not Found\r\nContent-Type: text/html", 404, b"Not Found"),
    (b"Status: 201", 201, b""),         # the status line as sent: `HTTP/1.1 201` (nginx)
    (b"Location: /x", 302, None),
    (b"Status: 301 Moved\r\nLocation: /x", 301, b"Moved"),
])
def test_cgi_status_rules(head, status, reason):
    h = parse_head(head)
    assert (h.status, h.reason) == (status, reason)
    assert all(n.lower() != b"status" for n, _ in h.headers)


def test_cgi_repeated_headers_kept_in_order():
    h = parse_head(b"Set-Cookie: a=1\r\nX: y\r\nSet-Cookie: b=2")
    assert h.headers == [(b"Set-Cookie", b"a=1"), (b"X", b"y"), (b"Set-Cookie", b"b=2")]


@pytest.mark.parametrize("bad", [b"Status: abc", b"no colon here", b": empty name"])
def test_cgi_invalid_heads(bad):
    with pytest.raises(ValueError):
        parse_head(bad)


def test_head_reader_split_input_bare_lf_and_limit():
    r = HeadReader(limit=100)
    assert r.feed(b"Content-Type: a\r\n") is None
    head, rest = r.feed(b"X: 1\r\n\r\nbody")
    assert head.headers == [(b"Content-Type", b"a"), (b"X", b"1")] and rest == b"body"
    head, rest = HeadReader(100).feed(b"X: 1\n\nbody\r\n\r\n")
    assert head.headers == [(b"X", b"1")] and rest == b"body\r\n\r\n"
    with pytest.raises(ValueError):
        HeadReader(limit=10).feed(b"X: " + b"a" * 20)
    with pytest.raises(ValueError):                  # complete, but too big all the same
        HeadReader(limit=10).feed(b"X: " + b"a" * 20 + b"\r\n\r\nbody")


@pytest.mark.parametrize("n", [1, 7, 8, 9, 500, 65535])
def test_request_head_written_out_is_params(n):
    """FastCGIWire.send_request's one PARAMS record of a request without a body, written out,
    is the bytes of fcgi.params(content, BEGIN_REQUEST, the end of STDIN)."""
    begin = fcgi.begin_request(False)
    content = bytes(range(256)) * (n // 256) + bytes(n % 256)
    pad = -n & 7
    assert b"".join((begin, fcgi.params_header(n, pad), content,
                     fcgi.PAD_PARAMS_STDIN_END[pad])) == fcgi.params(content, begin,
                                                                    fcgi.STDIN_END)
