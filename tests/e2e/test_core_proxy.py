"""Core behaviour against both nginx and ngate: proxying with curl, logs, pid file."""
import re
import subprocess

from tests.harness.backend import Reply
from tests.harness.client import request
from tests.harness.processes import wait_for

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /down/ {
            proxy_pass http://127.0.0.1:{dead_port};
        }
    }
}
"""


def start(start_proxy, backend):
    from tests.harness.processes import free_port
    return start_proxy(CONF, backend_port=backend.port, dead_port=free_port())


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True, timeout=20)


def test_curl_through_proxy(start_proxy, backend):
    backend.route("/hello", Reply(headers=[(b"Content-Type", b"text/plain"), (b"X-Backend", b"1")],
                                  body=b"hello from backend\n"))
    proxy = start(start_proxy, backend)
    out = curl("-i", "-H", "Host: example.test", f"http://127.0.0.1:{proxy.port}/hello?x=1")
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"\r\nX-Backend: 1" in head
    assert body == b"hello from backend\n"
    assert backend.requests[0].target == b"/hello?x=1"
    assert backend.requests[0].header(b"user-agent").startswith(b"curl/")


def test_curl_post_body_reaches_backend(start_proxy, backend):
    proxy = start(start_proxy, backend)
    out = curl("--data-binary", "payload=1", f"http://127.0.0.1:{proxy.port}/form")
    assert out.returncode == 0, out.stderr
    assert backend.requests[0].method == b"POST"
    assert backend.requests[0].body == b"payload=1"


def test_access_log_combined_line(start_proxy, backend):
    proxy = start(start_proxy, backend)
    request(proxy.port, "GET", "/logged?a=b", headers=[(b"User-Agent", b"ua-test"), (b"Referer", b"http://r/")])
    proxy.stop()  # flushes and closes the log
    line = proxy.access_log().strip().splitlines()[-1]
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^\]]+\] "GET /logged\?a=b HTTP/1\.1" 200 \d+ '
                        r'"http://r/" "ua-test"', line), line


def test_upstream_refused_logs_error_and_answers_502(start_proxy, backend):
    proxy = start(start_proxy, backend)
    resp = request(proxy.port, "GET", "/down/x")
    assert resp.status == 502
    assert b"<title>502 Bad Gateway</title>" in resp.body
    log = proxy.error_log()
    assert "connect() failed (111: Connection refused) while connecting to upstream" in log, log


def test_pid_file_holds_the_master_pid(start_proxy, backend):
    proxy = start(start_proxy, backend)
    # nginx opens its listening sockets before it writes the pid file (ngx_init_cycle, then
    # ngx_create_pidfile): a ready port does not mean the file is there yet
    path = proxy.prefix / "logs" / "nginx.pid"
    pid = wait_for(lambda: path.exists() and path.read_text().strip(), "the pid file", 10.0)
    assert pid == str(proxy.proc.pid)
