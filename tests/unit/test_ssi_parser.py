"""The SSI parser (filters/ssi_parser.py): nginx's states, fed whole, at every split point and
byte by byte, with the same events; nginx's rules for quotes, escapes, errors and limits."""
import pytest

from ngate.routing.uri import parse_unsafe_uri
from ngate.filters.ssi_parser import ERROR, Command, SsiParser

SAMPLE = (b'head <b>x</b> <!-- plain --> <<!--#echo var="uri" -->mid<!--#  include '
          b"virtual='/a?b' \t set=\"v\" -->"
          b'<!--#set var="x" value="a\\"b\\\\c" --><!--#bad-name-here x="1"-->'
          b'<!--#endif--><!-x <!--#echo var= -->tail<!')


def events(chunks) -> list:
    """Events of feeding `chunks`, adjacent text merged (splits may cut text anywhere)."""
    p = SsiParser()
    out: list = []
    for c in chunks:
        for ev in p.feed(c):
            if ev.__class__ is bytes and out and out[-1].__class__ is bytes:
                out[-1] += ev
            else:
                out.append(ev)
    return out


WHOLE = [
    b'head <b>x</b> <!-- plain --> <',
    Command("echo", [("var", "uri")]),
    b"mid",
    Command("include", [("virtual", "/a?b"), ("set", "v")]),
    Command("set", [("var", "x"), ("value", 'a\\"b\\\\c')]),
    ERROR,
    Command("endif", []),
    b"<!-x ",
    ERROR,
    b"tail",
]


def test_whole_sample():
    assert events([SAMPLE]) == WHOLE


@pytest.mark.parametrize("cut", range(1, len(SAMPLE)))
def test_every_split_point(cut):
    assert events([SAMPLE[:cut], SAMPLE[cut:]]) == WHOLE


def test_byte_by_byte():
    assert events([SAMPLE[i:i + 1] for i in range(len(SAMPLE))]) == WHOLE


def test_every_three_way_split_of_a_command():
    cmd = b'a<!--#echo var="x" -->b'
    want = [b"a", Command("echo", [("var", "x")]), b"b"]
    for i in range(1, len(cmd)):
        for j in range(i, len(cmd)):
            assert events([cmd[:i], cmd[i:j], cmd[j:]]) == want, (i, j)


def test_partial_prefix_at_the_end_is_dropped_as_nginx():
    p = SsiParser()
    assert p.feed(b"text<!-") == [b"text"]
    assert p.finish() == []


def test_errors_are_logged_with_nginx_wording():
    p = SsiParser()
    assert p.feed(b'<!--#echo var="x"y -->') == [ERROR]
    assert p.errors == ['unexpected "y" symbol after "x" value of "var" parameter in "echo" '
                        'SSI command']
    p = SsiParser()
    assert p.feed(b"<!--#echo var -->") == [ERROR]
    assert p.errors == ['unexpected "-" symbol after "var" parameter in "echo" SSI command']


def test_limits():
    assert events([b"<!--#" + b"c" * 32 + b" -->"]) == [Command("c" * 32, [])]
    assert events([b"<!--#" + b"c" * 33 + b" -->"]) == [ERROR]
    assert events([b'<!--#e ' + b"k" * 33 + b'="v" -->']) == [ERROR]
    p = SsiParser(value_len=4)
    assert p.feed(b'<!--#e k="1234" -->') == [Command("e", [("k", "1234")])]
    assert p.feed(b'<!--#e k="12345" -->') == [ERROR]


def test_single_quotes_and_whitespace():
    assert events([b"<!--#\r\n echo\tvar = 'a b' -->"]) == [Command("echo", [("var", "a b")])]


def test_lt_restarts_the_prefix():
    assert events([b"<<!<!-<!--#x -->"]) == [b"<<!<!-", Command("x", [])]


@pytest.mark.parametrize("uri,want", [
    ("/a/b", ("/a/b", None)), ("/a?b=c", ("/a", "b=c")), ("/tes%741.html?x", ("/test1.html", "x")),
    ("/u.html%3f", ("/u.html?", None)), ("/a/../b", None), ("/a/..", None), ("../a", None),
    ("?x", None), ("", None), ("/%2e%2e/x", None), ("/a/..b", ("/a/..b", None)),
])
def test_parse_unsafe_uri(uri, want):
    assert parse_unsafe_uri(uri) == want
