"""A refused directive fails closed at start and at reload (the old config keeps serving); a
warned one starts with its `[warn] ... has no effect in ngate` line."""
import os
import signal
import subprocess
import sys

from tests.harness.client import request
from tests.harness.processes import REPO_ROOT, ProxyProcess, fresh_prefix, wait_for

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location / { {extra} return 200 "{text}"; }
    }
}
"""



def test_refused_at_reload_keeps_the_old_config(tmp_path):
    with ProxyProcess("ngate", CONF, fresh_prefix(tmp_path, "ngate"), extra="http2_push /a.css;",
                      text="old") as proxy:
        conf = proxy.prefix / "nginx.conf"
        assert f'[warn] "http2_push" has no effect in ngate in {conf}:' in proxy.output()
        assert request(proxy.port, "GET", "/").body == b"old"
        conf.write_text(proxy.conf_text.replace("http2_push /a.css;", "uwsgi_pass 127.0.0.1:9;")
                        .replace('"old"', '"new"'))
        master = int((proxy.prefix / "logs/nginx.pid").read_text())
        os.kill(master, signal.SIGHUP)
        wait_for(lambda: "not supported" in proxy.error_log(), "the reload to be refused")
        line = next(x for x in proxy.error_log().splitlines() if "not supported" in x)
        assert "[emerg]" in line
        assert line.endswith(f'"uwsgi_pass" directive is not supported by ngate in {conf}:10')
        assert request(proxy.port, "GET", "/").body == b"old"


def test_refused_at_start_exits_1(tmp_path):
    prefix = fresh_prefix(tmp_path, "ngate")
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text("events {}\nhttp { server { listen 127.0.0.1:1; dav_methods PUT; } }\n")
    r = subprocess.run([sys.executable, "-m", "ngate", "-p", str(prefix), "-c", str(conf),
                        "-g", "daemon off;"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert r.returncode == 1
    assert f'[emerg] "dav_methods" directive is not supported by ngate in {conf}:2' in r.stderr
