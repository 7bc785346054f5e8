"""ngate/http1/request.py: nginx's request line, header line and chunked body rules, as bytes.

The statuses and acceptances below were checked against Debian's nginx 1.22.1 (the differential
tests in tests/differential/test_hostile_requests.py compare the same shapes end to end).
"""
from __future__ import annotations

import pytest

from ngate.http1.request import (BodyError, ChunkedDecoder, HeadError, head_end,
                                 parse_request_line, split_header)


@pytest.mark.parametrize("line, expected", [
    (b"GET / HTTP/1.1", (b"GET", b"/", "1.1")),
    (b"GET / HTTP/1.0", (b"GET", b"/", "1.0")),
    (b"GET / HTTP/1.2", (b"GET", b"/", "1.2")),
    (b"GET / HTTP/1.10", (b"GET", b"/", "1.10")),
    (b"GET / HTTP/1.01", (b"GET", b"/", "1.1")),
    (b"GET   /a   HTTP/1.1  ", (b"GET", b"/a", "1.1")),
    (b"MY_METHOD /x HTTP/1.1", (b"MY_METHOD", b"/x", "1.1")),
    (b"M" * 300 + b" / HTTP/1.1", (b"M" * 300, b"/", "1.1")),
    (b"GET /\xc3\xa9t\xc3\xa9?q=\xe2\x82\xac HTTP/1.1", (b"GET", b"/\xc3\xa9t\xc3\xa9?q=\xe2\x82\xac", "1.1")),
    (b"GET ftp://x/file HTTP/1.1", (b"GET", b"ftp://x/file", "1.1")),
    (b"GET http://[::1]:80/a HTTP/1.1", (b"GET", b"http://[::1]:80/a", "1.1")),
    (b"GET /", (b"GET", b"/", "0.9")),
    (b"POST /", (b"POST", b"/", "0.9")),      # the connection refuses it: GET only
])
def test_request_lines_nginx_accepts(line, expected):
    assert parse_request_line(line) == expected


@pytest.mark.parametrize("line, status", [
    (b"GARBAGE", 400),
    (b"get / HTTP/1.1", 400),
    (b"G(T / HTTP/1.1", 400),
    (b"GET / HTTP/2.0", 505),
    (b"GET / HTTP/9.9", 505),
    (b"GET / HTTP/1.1000", 400),
    (b"GET / HTTP/01.1", 400),
    (b"GET / HTTP/0.9", 400),
    (b"GET / http/1.1", 400),
    (b"GET /a\x01b HTTP/1.1", 400),
    (b"GET /a\x7fb HTTP/1.1", 400),
    (b"GET / HTTP/1.1\rX", 400),
    (b"GET x HTTP/1.1", 400),
])
def test_request_lines_nginx_refuses(line, status):
    with pytest.raises(HeadError) as exc:
        parse_request_line(line)
    assert exc.value.status == status


def test_header_values_keep_tabs_and_controls_lose_spaces():
    assert split_header(b"X-A:  \tv\t ") == (b"X-A", b"\tv\t")
    assert split_header(b"X-A: a\x01b\x7fc") == (b"X-A", b"a\x01b\x7fc")
    assert split_header(b"Content-Length: 1  ") == (b"Content-Length", b"1")
    assert split_header(b"X-Empty:") == (b"X-Empty", b"")


@pytest.mark.parametrize("line", [b"NoColon", b": v", b" X: v", b"X Y: v", b"X\x01: v"])
def test_bad_header_lines(line):
    with pytest.raises(HeadError) as exc:
        split_header(line)
    assert exc.value.status == 400


def test_head_end():
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody") == 27
    assert head_end(b"GET / HTTP/1.1\nHost: x\n\nbody") == 24
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\n\n") == 25
    assert head_end(b"\r\n\r\nGET", 2) == -1


def decode(data: bytes, pieces: list[int] | None = None) -> tuple[bytes, int]:
    """The body and the offset where it ended, feeding `data` cut at `pieces`."""
    out = []
    dec = ChunkedDecoder()
    cuts = [0, *(pieces or []), len(data)]
    for a, b in zip(cuts, cuts[1:]):
        end = dec.feed(data[a:b], out.append)
        if end >= 0:
            return b"".join(out), a + end
    return b"".join(out), -1


@pytest.mark.parametrize("body", [
    b"1\r\na\r\n0\r\n\r\n",
    b"1\na\n0\n\n",
    b"1 \r\na\r\n0\r\n\r\n",
    b"1 zz\r\na\r\n0\r\n\r\n",
    b"1;ext=1\r\na\r\n0;x\r\n\r\n",
    b"1\r\na\r\n0\r\nX-Admin: 1\r\nHost: y\r\n\r\n",
    b"1\r\na\r\n0\r\nNoColon\r\nX\x01: \x7f\r\n\r\n",
    b"01\r\na\r\n000\r\n\r\n",
])
def test_chunked_bodies_nginx_accepts(body):
    assert decode(body + b"NEXT") == (b"a", len(body))


def test_chunked_split_anywhere_gives_the_same_body():
    body = b"5\r\nhello\r\n3;x=y\r\n, w\r\n4\r\norld\r\n0\r\nTrailer: 1\r\n\r\n"
    for i in range(1, len(body)):
        for j in (i + 1, i + 3):
            assert decode(body + b"GET", [i, min(j, len(body))]) == (b"hello, world", len(body))


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"-1\r\n",
    b"\r\n",
    b"1\r\naX\r\n",
    b"1\r\na\r\n0\r\n\rX",
    b"1\rX",
    b"1" * 17 + b"\r\n",
])
def test_chunked_bodies_nginx_refuses(body):
    with pytest.raises(BodyError):
        decode(body)
