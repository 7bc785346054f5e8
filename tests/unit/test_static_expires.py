"""`expires`' http_time (ngate/static/expires.py) keeps its answer per time: the kept answer is
the formatted one, edge cases included, and the table is emptied when full."""
from __future__ import annotations

from email.utils import formatdate

from ngate.static import expires

TIMES = [0, 1, -1, 86399, 1_765_000_000, 1_765_000_000 + 3600, 2**31, 2**63 - 1, -2**63,
         2**63 + 5, 253402300799, 253402300800, 315360000000 + 1_765_000_000]


def _formatted(when: int) -> bytes:
    t = (when + 2 ** 63) % 2 ** 64 - 2 ** 63
    return formatdate(min(max(t, 0), 253402300799), usegmt=True).encode()


def test_kept_answers_are_the_formatted_ones(monkeypatch):
    monkeypatch.setattr(expires, "_TIMES", {})
    for when in TIMES:
        first = expires.http_time(when)
        assert first == _formatted(when)
        assert expires.http_time(when) is first         # kept
    assert expires.http_time(2**63 - 1) == b"Fri, 31 Dec 9999 23:59:59 GMT"
    assert expires.http_time(-1) == b"Thu, 01 Jan 1970 00:00:00 GMT"


def test_a_full_table_is_emptied(monkeypatch):
    monkeypatch.setattr(expires, "_TIMES", {})
    monkeypatch.setattr(expires, "_TIMES_MAX", 4)
    for when in range(10):
        assert expires.http_time(when) == _formatted(when)
        assert len(expires._TIMES) <= 4


class _Headers:
    def __init__(self, exp) -> None:
        self.expires = exp


class _Conf:
    def __init__(self, exp) -> None:
        self.headers = _Headers(exp)


def test_expires_of_a_time_follows_the_clock(monkeypatch):
    monkeypatch.setattr(expires, "_TIMES", {})
    conf = _Conf(expires.Expires("access", 3600))
    for now in (1_765_000_000, 1_765_000_000, 1_765_000_001, 1_764_999_999):
        monkeypatch.setattr(expires.time, "time", lambda now=now: now + 0.5)
        assert expires.expires_headers(conf, 200) == [
            (b"Expires", _formatted(now + 3600)), (b"Cache-Control", b"max-age=3600")]


NOW = 1_765_000_000


def test_modified_without_a_time_counts_from_now(monkeypatch):
    """ngx_http_set_expires: `modified` with no Last-Modified time (nginx's -1: a file whose
    mtime is -1, a directory's 301, a listing) is `access`; `modified 0` is now and max-age=0
    whatever the time; a negative time is no-cache even when the sum is in the future."""
    monkeypatch.setattr(expires, "_TIMES", {})
    monkeypatch.setattr(expires.time, "time", lambda: NOW + 0.5)
    conf = _Conf(expires.Expires("modified", 3600))
    assert expires.expires_headers(conf, 200, None) == [
        (b"Expires", _formatted(NOW + 3600)), (b"Cache-Control", b"max-age=3600")]
    assert expires.expires_headers(conf, 301) == [
        (b"Expires", _formatted(NOW + 3600)), (b"Cache-Control", b"max-age=3600")]
    assert expires.expires_headers(conf, 200, NOW - 100) == [
        (b"Expires", _formatted(NOW + 3500)), (b"Cache-Control", b"max-age=3500")]
    conf = _Conf(expires.Expires("modified", 0))
    assert expires.expires_headers(conf, 200, NOW - 100) == [
        (b"Expires", _formatted(NOW)), (b"Cache-Control", b"max-age=0")]
    conf = _Conf(expires.Expires("modified", -3600))
    assert expires.expires_headers(conf, 200, NOW + 7200) == [
        (b"Expires", _formatted(NOW + 3600)), (b"Cache-Control", b"no-cache")]
    assert expires.expires_headers(conf, 200, None) == [
        (b"Expires", _formatted(NOW - 3600)), (b"Cache-Control", b"no-cache")]
