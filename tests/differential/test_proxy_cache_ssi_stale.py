"""A stale entry served to a subrequest (an SSI include) with stale-while-revalidate and
proxy_cache_background_update: the include gets the stale body at once and the update runs in
the background, as for a main request (nginx-tests proxy_cache_use_stale.t, 's-w-r - not blocked
in subrequest'). Against Debian's nginx on the same config."""
import os
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange
from tests.harness.differential import Differential
from tests.harness.paths import readable_tmpdir

CONF = """
events { }
http {
    proxy_cache_path {base}/cache keys_zone=one:1m;
    server {
        listen 127.0.0.1:{port};
        root {base}/www;
        location /ssi.html { ssi on; }
        location /c/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache one;
            proxy_cache_key $uri;
            proxy_cache_background_update on;
        }
    }
}
"""


def reply(body: bytes) -> Reply:
    return Reply(headers=[(b"Content-Type", b"text/plain"),
                          (b"Cache-Control", b"max-age=1, stale-while-revalidate=30")], body=body)


@pytest.fixture(scope="module")
def diff():
    with readable_tmpdir("ngate-ssi-stale-") as base:
        www = base / "www"
        www.mkdir()
        (www / "ssi.html").write_text('[<!--#include virtual="/c/t" -->]')
        os.chmod(www, 0o755)
        d = Differential(CONF, base, base=str(base)).start()
        try:
            yield d
        finally:
            d.stop()


def test_ssi_include_gets_the_stale_entry_and_a_background_update(diff):
    b = diff.backend

    def get(port):
        return exchange(port, build_request("GET", "/ssi.html", version="HTTP/1.0"))[0]

    def script(port):
        b.route("/c/t", reply(b"old"))
        out = [get(port)]
        time.sleep(2.1)                 # the entry is stale (max-age=1), within s-w-r
        b.route("/c/t", reply(b"new"))
        out.append(get(port))
        time.sleep(0.3)                 # lets the update reach the backend (not an assertion)
        return out

    o = diff.check(script)
    assert [r.body for r in o.result] == [b"[old]", b"[old]"]
    assert len([r for r in o.requests() if r.target == b"/c/t"]) == 2   # the miss, the update
