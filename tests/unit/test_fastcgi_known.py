"""fastcgi/known.py's table of CGI heads: a head is marked the first time it is seen, may be
learned the second, and the table stays bounded whatever the application sends."""
from ngate.fastcgi import known

HEAD = b"Content-type: text/html; charset=UTF-8\r\n\r\n"


def test_a_head_is_learnable_the_second_time_it_is_seen():
    heads = {}
    assert known.lookup(heads, HEAD + b"ok\n") == (None, 0)       # seen once
    assert heads == {HEAD: None}
    assert known.lookup(heads, HEAD + b"other body") == (True, len(HEAD))
    heads[HEAD] = entry = (200, None, (), ((), None, None, None, None, False, False), None, None)
    assert known.lookup(heads, HEAD) == (entry, len(HEAD))


def test_incomplete_empty_and_long_heads_are_not_looked_up():
    heads = {}
    for data in (b"Content-Type: text/plain\r\n", b"\r\n\r\nbody",
                 b"X-Long: " + b"v" * 1100 + b"\r\n\r\n"):
        assert known.lookup(heads, data) == (None, 0)
        assert known.lookup(heads, data) == (None, 0)
    assert heads == {}


def test_the_table_is_bounded():
    heads = {}
    for i in range(1000):      # a head that never repeats (a session cookie, a date)
        known.lookup(heads, b"Set-Cookie: s=%d\r\n\r\n" % i)
        assert len(heads) <= 64
