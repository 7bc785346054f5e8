"""filters/range.py (one range cut from a streamed body, If-Range) and filters/gzip.py Inflate's
bounded output (pending / more, gzip members, a broken stream)."""
import gzip
import os
import zlib

import pytest

from ngate.filters import Chain
from ngate.filters.gzip import Inflate
from ngate.filters.range import SingleRange, if_range_ok

BODY = bytes(range(256)) * 40


@pytest.mark.parametrize("start,end", [(0, 1), (0, len(BODY)), (5, 700), (1023, 1025),
                                       (len(BODY) - 3, len(BODY))])
@pytest.mark.parametrize("step", [1, 7, 512, 100000])
def test_single_range_over_any_reads(start, end, step):
    f = SingleRange(start, end)
    out = b"".join(f.data(BODY[i:i + step]) for i in range(0, len(BODY), step)) + f.finish()
    assert out == BODY[start:end]


LM = b"Mon, 28 Sep 1970 06:00:00 GMT"


@pytest.mark.parametrize("value,etag,lm,ok", [
    (b'"a"', b'"a"', LM, True),
    (b'"a"', b'W/"a"', LM, False),
    (b'W/"a"', b'W/"a"', None, True),       # compared byte for byte, as nginx does
    (b'"a"', None, LM, False),
    (LM, b'"a"', LM, True),
    (b"Monday, 28-Sep-70 06:00:00 GMT", None, LM, True),    # dates compare as times
    (b"Mon, 28 Sep 1970 06:00:01 GMT", None, LM, False),
    (LM, b'"a"', None, False),              # no Last-Modified: a date never matches
    (b"wrong", None, LM, False),
])
def test_if_range(value, etag, lm, ok):
    assert if_range_ok(value, etag, lm) is ok


def _drain(f, data_parts):
    """Feed like the proxy: data(), then more() while pending; the largest single output."""
    out, biggest = [], 0
    for part in data_parts:
        got = f.data(part)
        out.append(got)
        biggest = max(biggest, len(got))
        while f.pending:
            got = f.more()
            out.append(got)
            biggest = max(biggest, len(got))
    last = f.finish()
    out.append(last)
    return b"".join(out), max(biggest, len(last))


def test_inflate_output_is_bounded():
    plain = b"\0" * (8 << 20)
    z = gzip.compress(plain, 9)
    f = Inflate(limit=64 << 10)
    out, biggest = _drain(f, [z[i:i + 65536] for i in range(0, len(z), 65536)])
    assert out == plain and biggest <= 64 << 10


def test_inflate_members_and_random_data():
    parts = [os.urandom(3000), b"x" * 100000, b"", b"tail"]
    z = b"".join(gzip.compress(p) for p in parts)
    for step in (1, 13, 4096, len(z)):
        f = Inflate(limit=1000)
        out, biggest = _drain(f, [z[i:i + step] for i in range(0, len(z), step)])
        assert out == b"".join(parts) and biggest <= 1000


def test_inflate_finish_without_draining_gives_the_rest():
    """A caller that does not look at `pending` (static file, cache entry) still gets it all."""
    plain = b"abc" * 100000
    f = Inflate(limit=4096)
    first = f.data(gzip.compress(plain))
    assert len(first) == 4096 and f.pending
    assert first + f.finish() == plain


def test_inflate_broken_stream_stops():
    z = bytearray(gzip.compress(os.urandom(50000)))
    z[5000:5010] = b"\xff" * 10
    f = Inflate(limit=1 << 20)
    out, _ = _drain(f, [bytes(z)])
    assert len(out) < 50000 and not f.pending and f.data(b"more") == b""


def test_chain_delegates_pending_to_gunzip():
    class Upper:
        def data(self, d):
            return d.upper()

        def finish(self):
            return b""

    plain = b"abc" * 50000
    c = Chain([Inflate(limit=1000), Upper()])
    out, biggest = _drain(c, [gzip.compress(plain)])
    assert out == plain.upper() and biggest <= 1000


def test_zlib_sanity():
    assert zlib.decompressobj().decompress(b"") == b""


# ---------------------------------------------------------------- not_modified (nginx's tests)

from ngate.filters.not_modified import check, match  # noqa: E402


@pytest.mark.parametrize("value,etag,weak,ok", [
    (b"*", None, False, True),
    (b'"a"', None, True, False),
    (b'"a"', '"a"', False, True),
    (b'"b", "a"', '"a"', False, True),
    (b'"b",\t"a" ', '"a"', False, True),
    (b'"ab"', '"a"', False, False),
    (b'W/"a"', '"a"', False, False),
    (b'W/"a"', '"a"', True, True),
    (b'"a"', 'W/"a"', True, True),
    (b'"a"', 'W/"a"', False, False),
    (b'"x", W/"a"', 'W/"a"', True, True),
])
def test_etag_match(value, etag, weak, ok):
    assert match(value, etag, weak) is ok


T = 1000000000
D = b"Sun, 09 Sep 2001 01:46:40 GMT"        # T


@pytest.mark.parametrize("headers,mode,lm,etag,want", [
    ({}, "exact", T, '"e"', None),
    ({b"if-modified-since": D}, "exact", T, None, 304),
    ({b"if-modified-since": D}, "exact", T + 1, None, None),
    ({b"if-modified-since": D}, "before", T - 1, None, 304),
    ({b"if-modified-since": D}, "off", T, None, None),
    ({b"if-modified-since": b"junk"}, "before", T, None, None),
    ({b"if-modified-since": D}, "exact", None, None, None),
    ({b"if-none-match": b'"e"'}, "exact", T, '"e"', 304),
    ({b"if-none-match": b'"e"', b"if-modified-since": D}, "exact", T + 1, '"e"', None),
    ({b"if-unmodified-since": D}, "exact", T + 1, None, 412),
    ({b"if-unmodified-since": D}, "exact", T, None, None),
    ({b"if-unmodified-since": b"junk"}, "exact", T, None, 412),
    ({b"if-unmodified-since": D}, "exact", None, None, 412),
    ({b"if-match": b'"x"'}, "exact", T, '"e"', 412),
    ({b"if-match": b"*"}, "exact", T, None, None),
])
def test_not_modified(headers, mode, lm, etag, want):
    assert check(headers, mode, lm, etag) == want


def test_http_time_kept_per_value_gives_the_parse(monkeypatch):
    """http_time keeps its parse per header value (clients send one value again and again):
    the same answers as the parse itself, a value that is no date included, in a bounded
    table."""
    from ngate.filters import not_modified
    monkeypatch.setattr(not_modified, "_TIMES", {})
    monkeypatch.setattr(not_modified, "_TIMES_MAX", 3)
    values = [D, b"junk", b"Sunday, 09-Sep-01 01:46:40 GMT", b"Sun Sep  9 01:46:40 2001", D,
              b"junk", b"Mon, 10 Sep 2001 01:46:40 GMT"]
    for v in values:
        assert not_modified.http_time(v) == not_modified._parse_time(v)
        assert not_modified.http_time(v) == not_modified._parse_time(v)     # kept
        assert len(not_modified._TIMES) <= 3
    assert not_modified.http_time(D) == T and not_modified.http_time(b"junk") is None
