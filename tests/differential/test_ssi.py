"""SSI and the addition filter through nginx and ngate: the same files, upstream responses and
requests, bodies compared byte for byte (include virtual/file/set/wait/stub, nested includes,
includes of proxied and `return` locations, echo encodings, set, if/elif/else with regexes and
captures, config errmsg, block, parse errors, commands split across upstream reads;
add_before_body/add_after_body)."""
import pytest

from tests.harness.backend import Reply
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    include /etc/nginx/mime.types;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        ssi on;
        location /p/ { proxy_pass http://127.0.0.1:{backend_port}/; }
        location /nossi/ { ssi off; alias {docroot}/; }
        location /ret/ { return 200 "R[$uri|$args]"; }
        location /silent/ { ssi_silent_errors on; alias {docroot}/; }
        location /types/ { ssi_types text/plain; alias {docroot}/; }
        location /lm/ { ssi_last_modified on; alias {docroot}/; }
        location /add/ {
            ssi off;
            alias {docroot}/;
            add_before_body /ret/before;
            add_after_body /ret/after;
        }
        location /add-types/ {
            ssi off;
            alias {docroot}/;
            add_after_body /ret/after;
            addition_types text/plain;
        }
    }
}
"""

FILES = {
    "echo.html": b'A<!--#echo var="uri" -->B<!--# echo var="arg_x" default="none" -->'
                 b'<!--#echo var="nosuch" -->'
                 b'<!--#echo var="arg_x" encoding="url" --><!--#echo var="arg_x" -->'
                 b'<!--#echo var="arg_x" encoding="entity" -->'
                 b'<!--#echo var="arg_x" encoding="none" -->E\n',
    "include.html": b'1<!--#include virtual="/inc.html" -->2<!--#include virtual="inc.html" -->'
                    b'3<!--#include file="inc.html" -->4<!--#include virtual="/ret/a?b=c" -->5'
                    b'<!--#include virtual="/p/up.html" -->6<!--#include virtual="/nested.html" -->'
                    b'7\n',
    "inc.html": b"<inc $uri>",
    "nested.html": b'N(<!--#include virtual="/ret/deep" -->)',
    "set.html": b'<!--#include virtual="/ret/x?y" set="one" -->[<!--#echo var="one" -->]'
                b'<!--#include virtual="/p/up.html" set="two" -->[<!--#echo var="two" -->]'
                b'<!--#set var="v" value="a${uri}b\\$c" -->[<!--#echo var="v" -->]'
                b'<!--#include virtual="/ret/w" wait="yes" -->\n',
    "if.html": b'<!--#if expr="$arg_a" -->A<!--#elif expr="$arg_b = x" -->B'
               b'<!--#elif expr="$arg_c = /^(c+)(?<tail>d*)$/" -->C$1<!--#echo var="1" -->'
               b'<!--#echo var="tail" --><!--#else -->E<!--#endif -->|'
               b'<!--#if expr="$arg_b != x" -->nb<!--#endif -->\n',
    "errors.html": b'<!--#nosuch -->|<!--#echo -->|<!--#echo var="a" bad="b" -->|'
                   b'<!--#config errmsg="ERR" --><!--#echo var= -->|<!--#else -->|'
                   b'<!--#include virtual="/../etc/passwd" -->|<!--#echo var="x" var="y" -->|'
                   b'<!-- plain comment --><!--#include virtual="/x" file="/y" -->|<!--',
    "regex.html": b'<!--#if expr="$arg_v = /(x/" -->Y<!--#else -->N<!--#endif -->|'
                  b'<!--#if expr="$arg_v = /^\\w+$/" -->W<!--#endif -->|'
                  b'<!--#if expr="$arg_v = /(?i)^AB/" -->I<!--#endif -->\n',
    "cycle.html": b'a<!--#include virtual="/cycle.html" -->b',
    "memory.html": b'a<!--#include virtual="/memory.html" set="x" -->[<!--#echo var="x" -->]',
    "block.html": b'<!--#block name="one" -->STUB(<!--#echo var="uri" -->)<!--#endblock -->'
                  b'<!--#include virtual="/nosuch.html" stub="one" -->|'
                  b'<!--#include virtual="/inc.html" stub="one" -->\n',
    "plain.txt": b'T<!--#echo var="uri" -->T\n',
    "page.html": b"<p>page</p>\n",
    # the sample of tests/unit/test_ssi_parser.py, with an include that exists
    "sample.html": b'head <b>x</b> <!-- plain --> <<!--#echo var="uri" -->mid<!--#  include '
                   b"virtual='/ret/a?b' \t set=\"v\" -->"
                   b'<!--#set var="x" value="a\\"b\\\\c" --><!--#echo var="x" -->'
                   b'<!--#bad-name-here x="1"--><!--#endif--><!-x <!--#echo var= -->tail<!',
}

CHUNKS = [b"a<!-", b"-#echo va", b'r="uri" -', b"->b<!--#inc", b'lude virtual="/inc.html"',
          b" -->c<", b"!--x<!--#echo var=\"arg_q\" default='d\\'q' --", b">end"]
ROUTES = {
    "/up.html": Reply(headers=[(b"Content-Type", b"text/html")], body=b"UP"),
    "/split.html": Reply(headers=[(b"Content-Type", b"text/html")], chunks=CHUNKS),
    "/page.txt": Reply(headers=[(b"Content-Type", b"text/plain")], body=b'<!--#echo var="uri" -->'),
}


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ngate-ssiroot-") as root:
        for name, data in FILES.items():
            (root / name).write_bytes(data)
        yield root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    for path, reply in ROUTES.items():
        d.backend.route(path, reply)
    return d


TARGETS = ["/sample.html", "/echo.html", "/echo.html?x=a%20b<c>&d", "/include.html", "/set.html",
           "/if.html?a=1", "/if.html?b=x", "/if.html?c=ccdd", "/if.html", "/errors.html", "/regex.html?v=ab", "/regex.html?v=a-b",
           "/cycle.html", "/memory.html",
           "/block.html", "/plain.txt", "/types/plain.txt", "/nossi/echo.html",
           "/silent/errors.html", "/lm/page.html", "/p/split.html?q=Q", "/p/page.txt",
           "/add/page.html", "/add/plain.txt", "/add-types/plain.txt", "/add/nosuch.html"]


@pytest.mark.parametrize("target", TARGETS)
def test_get(diff, target):
    diff.check_request("GET", target)


@pytest.mark.parametrize("target", ["/include.html", "/add/page.html"])
def test_head(diff, target):
    diff.check_request("HEAD", target)


def test_http10(diff):
    diff.check_raw(b"GET /include.html HTTP/1.0\r\nHost: example.test\r\n\r\n")


def test_facts(diff):
    r = diff.check_request("GET", "/include.html").response
    assert r.body == (b"1<inc $uri>2<inc $uri>3<inc $uri>4R[/ret/a|b=c]5UP6N(R[/ret/deep|])7\n")
    assert r.header("content-length") is None and r.header("last-modified") is None
    r = diff.check_request("GET", "/p/split.html?q=Q").response
    assert r.body == b"a/p/split.htmlb<inc $uri>c<!--xQend"
    r = diff.check_request("GET", "/add/page.html").response
    assert r.body == b"R[/ret/before|]<p>page</p>\nR[/ret/after|]"
