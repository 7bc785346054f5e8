"""split_request_uri, normalize_uri (nginx's ngx_http_parse_complex_uri) and escape_uri."""
import pytest

from ngate.routing.uri import escape_uri, normalize_uri, split_request_uri


@pytest.mark.parametrize("target, path, args", [
    ("/", "/", None),
    ("/a/b", "/a/b", None),
    ("/a?x=1&y=2", "/a", "x=1&y=2"),
    ("/a?", "/a", ""),
    ("/a?x=1?y", "/a", "x=1?y"),
    ("/a?x#frag", "/a", "x"),
    ("/a#frag?x", "/a", None),
    ("/a#", "/a", None),
    ("/a%3F?q", "/a%3F", "q"),
    ("http://example.com/p/q?a=1", "/p/q", "a=1"),
    ("http://example.com", "/", None),
    ("https://example.com:8443?a", "/", "a"),
])
def test_split_request_uri(target, path, args):
    assert split_request_uri(target) == (path, args)


@pytest.mark.parametrize("raw, uri", [
    ("/", "/"),
    ("/a/b.html", "/a/b.html"),
    ("/a/../b", "/b"),
    ("/a/./b", "/a/b"),
    ("/a/.", "/a/"),
    ("/a/b/..", "/a/"),
    ("/a/b/../..", "/"),
    ("/a/./../b", "/b"),
    ("/a//b", "/a/b"),
    ("//a//b//", "/a/b/"),
    ("/a//./b/", "/a/b/"),
    ("/a/...", "/a/..."),
    ("/a/..b/.c", "/a/..b/.c"),
    ("/.a/./", "/.a/"),
    ("/./", "/"),
    ("/a//..", "/"),
    # percent-decoding, and decoded "/" and "." take part in the dot rules
    ("/%41%62", "/Ab"),
    ("/a%2fb", "/a/b"),
    ("/a%2Fb%2F..%2Fc", "/a/c"),
    ("/a/%2e%2e/b", "/b"),
    ("/a/.%2e/x", "/x"),
    ("/a/b/%2E./c", "/a/c"),
    ("/%2e", "/"),
    # decoded "%", "?" and "#" are ordinary characters
    ("/a%25b", "/a%b"),
    ("/a%252e%252e", "/a%2e%2e"),
    ("/a%3Fb", "/a?b"),
    ("/a%23b", "/a#b"),
    ("/caf%C3%A9", "/caf\xc3\xa9"),
    ("/sp%20ace", "/sp ace"),
    ("/a+b", "/a+b"),
])
def test_normalize_uri(raw, uri):
    assert normalize_uri(raw) == uri


@pytest.mark.parametrize("raw", [
    "/..", "/../a", "/a/../..", "/%2e%2e", "/%2e%2e/", "/a/..%2f..%2fetc/passwd",
    "/a/b/../../..", "//..",
    "/a%zz", "/a%0", "/a%", "/a%2", "/a%g1", "/a%2%41",
    "/a%00b",
    "a/b", "*", "",
])
def test_normalize_uri_rejects(raw):
    with pytest.raises(ValueError):
        normalize_uri(raw)


@pytest.mark.parametrize("raw, uri", [
    ("/a//b", "/a//b"),
    ("//a", "//a"),
    ("/a//../b", "/a/b"),
    ("/a//..", "/a/"),
    ("//..", "/"),
    ("/a/./b//", "/a/b//"),
])
def test_normalize_uri_without_merge_slashes(raw, uri):
    assert normalize_uri(raw, merge_slashes=False) == uri


def test_normalize_uri_fast_path_returns_the_same_object():
    raw = "/plain/path/file.txt"
    assert normalize_uri(raw) is raw


@pytest.mark.parametrize("path, escaped", [
    ("/a/b", "/a/b"),
    ("/a b", "/a%20b"),
    ("/%?#", "/%25%3F%23"),
    ("/caf\xc3\xa9", "/caf%C3%A9"),
    ("/\x01\x7f", "/%01%7F"),
    ('/"quoted"&=+;:@!$\'()*,~', '/%22quoted%22&=+;:@!$\'()*,~'),
    ("/<>\\^`{|}", "/%3C%3E%5C%5E%60%7B%7C%7D"),       # nginx 1.22.1: Location: /x%22%3C%5Ey/
])
def test_escape_uri(path, escaped):
    assert escape_uri(path) == escaped


@pytest.mark.parametrize("raw", ["/a%20b", "/caf%C3%A9", "/x%3Fy%23z%25", "/p%2Fq"])
def test_escape_after_normalize_keeps_the_meaning(raw):
    uri = normalize_uri(raw)
    assert normalize_uri(escape_uri(uri)) == uri
