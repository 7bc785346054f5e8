"""A Content-Type with parameters tested against *_types (gzip_types, sub_filter_types,
ssi_types, addition_types, charset_types), through nginx and ngate. nginx compares the type up
to the `;` of a `charset=` parameter (ngx_http_upstream_copy_content_type sets
content_type_len there), else the whole value (ngx_http_test_content_type): so
`text/plain; foo=bar` is not `text/plain`, nor is `text/plain ; charset=utf-8`; a local
type (default_type, types) is compared whole and names no charset (ngx_http_set_content_type)."""
import pytest

from tests.harness.backend import Reply
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    include /etc/nginx/koi-utf;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        gzip_min_length 1;
        location /gz/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip on; gzip_types text/plain; }
        location /sub/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter hello bye; sub_filter_types text/plain;
        }
        location /ssi/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            ssi on; ssi_types text/plain;
        }
        location /add/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            add_before_body /before; addition_types text/plain;
        }
        location /cs/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            charset utf-8; charset_types text/plain;
        }
        location /csrc/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            charset utf-8; source_charset koi8-r; charset_types text/plain;
        }
        location = /before { return 200 "BEFORE "; }
        location /dt/ {
            default_type "text/plain; charset=utf-8";
            gzip on; gzip_types text/plain;
            sub_filter hello bye; sub_filter_types text/plain;
            return 200 "hello hello";
        }
        location /st/ {
            alias {docroot}/;
            types { "text/plain; charset=utf-8" txt; "text/plain; foo=bar" text; text/plain plain; }
            gzip on; gzip_types text/plain;
            sub_filter hello bye; sub_filter_types text/plain;
        }
        location /stcs/ {
            alias {docroot}/;
            types { "text/plain; charset=utf-8" txt; "text/plain; foo=bar" text; text/plain plain; }
            charset koi8-r; charset_types *;
        }
        location /dtp/ {
            default_type "text/plain; foo=bar";
            gzip on; gzip_types text/plain;
            sub_filter hello bye; sub_filter_types text/plain;
            return 200 "hello hello";
        }
    }
}
"""

TYPES = {
    "plain": b"text/plain",
    "param": b"text/plain; foo=bar",
    "param-nospace": b"text/plain;foo=bar",
    "charset": b"text/plain; charset=utf-8",
    "charset-nospace": b"text/plain;charset=utf-8",
    "space-before": b"text/plain ; charset=utf-8",
    "charset-first": b"text/plain; charset=utf-8; foo=bar",
    "charset-last": b"text/plain; foo=bar; charset=utf-8",
    "upper": b"TEXT/Plain; Charset=UTF-8",
    "quoted": b'text/plain; charset="utf-8"',
    "trailing-semicolon": b"text/plain;",
    "empty-param": b"text/plain; ",
}
BODY = b'hello <!--# echo var="uri" --> hello'


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ngate-ctype-") as root:
        for ext in ("txt", "text", "plain"):
            (root / f"f.{ext}").write_bytes(b"hello hello")
        yield root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    for name, ctype in TYPES.items():
        d.backend.route(f"/{name}", Reply(headers=[(b"Content-Type", ctype)], body=BODY))
    return d


@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("module", ["gz", "sub", "ssi", "add", "cs", "csrc"])
def test_proxied_type_with_parameters(diff, module, name):
    diff.check_request("GET", f"/{module}/{name}", headers=[(b"Accept-Encoding", b"gzip")])


@pytest.mark.parametrize("location", ["dt", "dtp"])
def test_default_type_with_parameters(diff, location):
    diff.check_request("GET", f"/{location}/", headers=[(b"Accept-Encoding", b"gzip")])


@pytest.mark.parametrize("location", ["st", "stcs"])
@pytest.mark.parametrize("ext", ["txt", "text", "plain"])
def test_static_types_with_parameters(diff, location, ext):
    diff.check_request("GET", f"/{location}/f.{ext}", headers=[(b"Accept-Encoding", b"gzip")])


def test_facts(diff):
    """What nginx does, asserted on its answers (the differential compares ngate to them)."""
    def body(target):
        return diff.check_request("GET", target).response.body
    assert body("/sub/plain") == BODY.replace(b"hello", b"bye", 1)
    assert body("/sub/param") == BODY                   # text/plain; foo=bar is another type
    assert body("/sub/charset-first").startswith(b"bye")
    assert body("/sub/space-before") == BODY
    assert body("/dt/") == b"hello hello"               # default_type is compared whole
