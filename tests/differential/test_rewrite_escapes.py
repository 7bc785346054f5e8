"""rewrite's escaping rules, nginx vs ngate: a redirect's target is unescaped as
ngx_unescape_uri(NGX_UNESCAPE_REDIRECT) does, and captures copied into arguments (or into a
redirect) are escaped again when the request URI had escapes."""
import pytest

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location /t1 { rewrite ^ $arg_r? redirect; }
        location /t2 { rewrite ^ http://example.com$request_uri? redirect; }
        location /t4 { rewrite ^(.*) http://example.com$1 redirect; }
        location /t5 { rewrite ^ http://example.com/blah%20%3Fblah redirect; }
        location /cap { rewrite ^(.*) $1?c=d; return 200 "uri:$uri args:$args"; }
        location /dup { rewrite ^(.*) $1?c=$1; return 200 "uri:$uri args:$args"; }
        location /keep { rewrite ^(.*) $1?c=$1?; return 200 "uri:$uri args:$args"; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


@pytest.mark.parametrize("target", [
    "/t1?r=http%3A%2F%2Fexample.com%2F%3Ffrom", "/t1?r=http%3A%2F%2Fexample.com%0D%0Asplit",
    "/t1?r=%zz%4x%41%7e%7E%25%2520x", "/t2/%41%20b?x=%41", "/t4/a%20b%3F/c", "/t5",
    "/cap/%25?a=b", "/dup/%25?a=b", "/dup/a+b%26?a=b", "/dup/plain?a=b", "/keep/%25&x?a=b"])
def test_rewrite_escapes(diff, target):
    diff.check_request("GET", target)
