"""proxy_redirect with a variable in the first argument and with regexes (searched, replacing the
whole value, captures in the replacement), on Location and Refresh; an upstream head with bare LF
line ends (nginx accepts them); nginx vs ngate."""
import pytest

from tests.harness.backend import Reply

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        set $v var_in_first;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_redirect http://127.0.0.1:{backend_port}/$v/ /replaced/;
            proxy_redirect ~^(.+)/regex_w_([^/]+) $1/$2/test.html;
            proxy_redirect ~*re+gexp? /replaced/test.html;
            proxy_redirect "~(?<name>named)/(.*)$" /n/$name/$2;
        }
    }
}
"""
LOCATIONS = ["http://127.0.0.1:{backend_port}/var_in_first/test.html", "/regex_w_captures",
             "http://x.test/a/REEGEX/b", "/named/tail", "/untouched", "/a/b/regex_w_x/y"]


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    for i, loc in enumerate(LOCATIONS):
        loc = loc.replace("{backend_port}", str(d.backend.port))
        d.backend.route(f"/l{i}", Reply(status=302, headers=[(b"Location", loc.encode())]))
        d.backend.route(f"/r{i}", Reply(status=200, headers=[(b"Refresh", b"7; url=" + loc.encode())]))
    d.backend.route("/bare-lf", Reply(raw=b"HTTP/1.1 200 OK\nConnection: close\nX-A: 1\n\nbody"))
    d.backend.route("/bare-lf-302", Reply(raw=b"HTTP/1.1 302 Found\nLocation: /regex_w_z\n"
                                              b"Content-Length: 0\n\n"))
    return d


@pytest.mark.parametrize("i", range(len(LOCATIONS)))
def test_proxy_redirect_rules(diff, i):
    diff.check_request("GET", f"/l{i}")
    diff.check_request("GET", f"/r{i}")


@pytest.mark.parametrize("target", ["/bare-lf", "/bare-lf-302"])
def test_upstream_bare_lf(diff, target):
    assert diff.check_request("GET", target).response.status in (200, 302)
