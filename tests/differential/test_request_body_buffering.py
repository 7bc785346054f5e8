"""Request bodies read whole before the upstream is contacted (proxy_request_buffering on, the
default): what the backend receives, $request_body / $request_body_file, client_body_in_file_only,
client_body_temp_path as the master creates it; and the keep-alive rules beside them
(keepalive_timeout's header, keepalive_disable, keepalive_time, $connection_time)."""
import os
import re
import shutil
import tempfile
import time

import pytest

from tests.harness.client import Connection, build_request, exchange

CONF = """
http {
    map $request_body_file $has_file { "" no; default yes; }
    server {
        listen 127.0.0.1:{port};
        client_body_buffer_size 2k;
        client_body_temp_path {temp}/body;
        add_header X-Body "$request_body";
        add_header X-Has-File $has_file;

        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /off/ {
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /file/ {
            client_body_in_file_only on;
            client_body_temp_path {temp}/files 1 2;
            add_header X-File $request_body_file;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /ka/ {
            keepalive_timeout 30 9;
            return 200 "ka\\n";
        }
        location /ct/ {
            add_header X-Conn-Time $connection_time;
            return 200 "ct\\n";
        }
        location /katime/ {
            keepalive_time 1s;
            return 200 "t\\n";
        }
        location /safari/ {
            keepalive_disable safari;
            return 200 "s\\n";
        }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    # the worker user (nobody, under root) must reach the temp paths: pytest's are 0700
    temp = tempfile.mkdtemp(prefix="ngate-body-")
    os.chmod(temp, 0o755)
    yield differential(CONF, temp=temp)
    shutil.rmtree(temp, ignore_errors=True)


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def test_small_body_in_memory_reaches_upstream_with_length(diff):
    out = diff.check_request("POST", "/a", body=b"0123456789")
    assert out.response.header("x-body") == b"0123456789"
    assert out.response.header("x-has-file") == b"no"
    assert out.requests()[0].header(b"content-length") == b"10"


def test_large_body_goes_to_a_temp_file_and_out_of_request_body(diff):
    body = b"0123456789" * 512
    out = diff.check_request("POST", "/big", body=body)
    assert out.response.header("x-body") is None
    assert out.response.header("x-has-file") == b"yes"
    assert out.requests()[0].body == body
    assert "a client request body is buffered to a temporary file" in out.error_log


def test_chunked_body_is_sent_with_content_length(diff):
    raw = build_request("POST", "/c", headers=[(b"Transfer-Encoding", b"chunked")],
                        body=chunked(b"abc", b"defgh"))
    out = diff.check_raw(raw)
    seen = out.requests()[0]
    assert seen.header(b"content-length") == b"8" and not seen.chunked
    assert out.response.header("x-body") == b"abcdefgh"


def test_buffering_off_keeps_small_request_body(diff):
    # the chunked body came whole with the head: nginx then sends Content-Length, not chunks
    raw = build_request("POST", "/off/c", headers=[(b"Transfer-Encoding", b"chunked")],
                        body=chunked(b"abc", b"defgh"))
    out = diff.check_raw(raw)
    assert out.requests()[0].header(b"content-length") == b"8"
    assert out.response.header("x-body") == b"abcdefgh"


def test_in_file_only_keeps_the_file_with_the_body(diff):
    for kind, proc in diff.procs.items():
        out = diff.run(kind, lambda port: exchange(port, build_request("POST", "/file/x",
                                                                       body=b"kept body")))
        resp = out.response
        name = resp.header("x-file").decode()
        assert resp.header("x-body") is None, kind          # in a file: not in $request_body
        # nginx's temp file naming: <path>/<last digit>/<two before>/<10 digits>
        assert re.fullmatch(re.escape(proc.params["temp"] + "/files") + r"/\d/\d\d/\d{10}",
                            name), (kind, name)
        with open(name, "rb") as f:
            assert f.read() == b"kept body", kind
        assert out.requests()[0].body == b"kept body"


def test_temp_dirs_are_made_by_the_master_for_the_worker_user(diff):
    temp = diff.procs["ngate"].params["temp"]
    for sub in ("body", "files"):                       # both programs share these paths
        st = os.stat(os.path.join(temp, sub))
        assert st.st_mode & 0o777 == 0o700
        if os.geteuid() == 0:
            assert st.st_uid != 0          # the worker's user (nobody), not root
    # ngate's default path, made whether used or not (nginx's default is Debian's compiled-in
    # /var/lib/nginx/body)
    st = os.stat(diff.procs["ngate"].prefix / "client_body_temp")
    assert st.st_mode & 0o777 == 0o700


def test_keepalive_timeout_header_and_connection_time(diff):
    out = diff.check(lambda port: exchange(port, build_request("GET", "/ka/"))[0].header("keep-alive"))
    assert out.result == b"timeout=9"
    for kind in diff.procs:
        resp = diff.run(kind, lambda port: exchange(port, build_request("GET", "/ct/"))).response
        assert re.fullmatch(rb"\d+\.\d{3}", resp.header("x-conn-time")), kind


def test_keepalive_time_ends_an_old_connection(diff):
    def script(port):
        with Connection(port) as conn:
            conn.send(build_request("GET", "/katime/"))
            first = conn.read_response("GET")
            time.sleep(1.2)          # past keepalive_time: this request is its last
            conn.send(build_request("GET", "/katime/"))
            return first.header("connection"), conn.read_response("GET").header("connection")
    assert diff.check(script).result == (b"keep-alive", b"close")


@pytest.mark.parametrize("target,method,ua,expect", [
    ("/ka/", "POST", b"Mozilla/4.0 (compatible; MSIE 5.0; Windows NT)", b"close"),
    ("/ka/", "GET", b"Mozilla/4.0 (compatible; MSIE 5.0; Windows NT)", b"keep-alive"),
    ("/ka/", "POST", b"Mozilla/4.0 (compatible; MSIE 6.0; SV1)", b"keep-alive"),
    ("/safari/", "GET", b"Mac OS X Safari/7534.48.3", b"close"),
    ("/safari/", "GET", b"Mac OS X Chrome/99 Safari/7534.48.3", b"keep-alive"),
])
def test_keepalive_disable(diff, target, method, ua, expect):
    out = diff.check_request(method, target, headers=[(b"User-Agent", ua)],
                             body=b"x" if method == "POST" else None)
    assert out.response.header("connection") == expect
