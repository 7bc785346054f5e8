"""valid_referers and $invalid_referer, nginx vs ngate on the same config and Referer headers."""
import pytest

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost *.srv.test ~^rx\\d+\\.test$;
        location /simple { valid_referers www.example.org; return 200 "[$invalid_referer]"; }
        location /none { valid_referers none www.example.org; return 200 "[$invalid_referer]"; }
        location /blocked { valid_referers blocked example.org; return 200 "[$invalid_referer]"; }
        location /uri { valid_referers www.example.org/uri; return 200 "[$invalid_referer]"; }
        location /wc { valid_referers *.example.com .example.net www.example.* ;
                       return 200 "[$invalid_referer]"; }
        location /regex { valid_referers ~example\\.org ~(?-i)Example.net;
                          return 200 "[$invalid_referer]"; }
        location /sn { valid_referers server_names; return 200 "[$invalid_referer]"; }
        location /unset { return 200 "[$invalid_referer]"; }
        location /nested { valid_referers www.example.org;
            location /nested/inner { return 200 "[$invalid_referer]"; } }
    }
}
"""

REFERERS = [None, "", "http://www.example.org", "https://www.example.org/uri?x",
            "http://www.example.org:8080/urii", "http://WWW.EXAMPLE.ORG/uRi", "foobar",
            "http://su", "http://a.example.com", "http://example.com", "http://example.net",
            "http://x.example.net", "http://www.example.co.uk/", "http://www.eXample.org",
            "http://Example.net", "http://example.net", "http://localhost/", "http://a.srv.test",
            "http://rx12.test", "http://" + "a" * 257, "http://www.example.org/" + "a" * 300]


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


@pytest.mark.parametrize("path", ["/simple", "/none", "/blocked", "/uri", "/wc", "/regex",
                                  "/sn", "/unset", "/nested/inner"])
def test_invalid_referer(diff, path):
    for ref in REFERERS:
        headers = [] if ref is None else [(b"Referer", ref.encode())]
        diff.check_request("GET", path, headers=headers)


def test_none_without_names_is_refused(tmp_path):
    from tests.unit._config_helpers import ngate_error, write_conf
    conf = write_conf(tmp_path, "server { listen 8080; location / { valid_referers none; } }")
    assert ngate_error(conf, str(tmp_path)).startswith('the "none" or "blocked" referers')
