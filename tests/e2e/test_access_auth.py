"""auth_basic, allow/deny and limit_except with real clients (curl, requests, websockets), against
nginx and ngate: the challenge and a login, a WebSocket upgrade behind auth_basic, the user file
edited while the server runs (no reload), $remote_user in the access log, auth_delay, and the
POST that `limit_except GET { deny all; }` used to let through (issue 12)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.harness.ws_echo import EchoServer
from tests.harness.client import Connection, build_request
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    log_format users '$remote_user|$request_method $uri|$status';
    access_log {prefix}/logs/users.log users;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location /secret {
            auth_basic "private";
            auth_basic_user_file {users}/htpasswd;
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-Remote-User $remote_user;
        }
        location /wss {
            auth_basic "chat";
            auth_basic_user_file {users}/htpasswd;
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
        location /readonly {
            limit_except GET { deny all; }
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /local-only { allow 10.1.2.3; deny all; proxy_pass http://127.0.0.1:{backend_port}; }
        location /slow401 {
            auth_basic "slow"; auth_basic_user_file {users}/htpasswd;
            auth_delay 1s;
            proxy_pass http://127.0.0.1:{backend_port};
        }
    }
}
"""


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


@pytest.fixture
def users():
    """Where the user file lives: a directory nginx's workers (nobody) can read."""
    with readable_tmpdir("ngate-users-") as path:
        yield path


@pytest.fixture
def proxy(start_proxy, backend, echo, users):
    proc = start_proxy(CONF, backend_port=backend.port, ws_port=echo.port, users=users)
    proc.users = users / "htpasswd"
    return proc


def write_users(proxy, text: str) -> None:
    """Replace the user file (a new inode, as editors and htpasswd do)."""
    path = proxy.users
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def openssl_passwd(flag: str, password: str) -> str:
    out = subprocess.run(["openssl", "passwd", flag, password], capture_output=True, check=True)
    return out.stdout.decode().strip()


def url(proxy, path: str) -> str:
    return f"http://127.0.0.1:{proxy.port}{path}"


def test_curl_gets_the_challenge_then_logs_in(proxy, backend):
    write_users(proxy, f"alice:{openssl_passwd('-apr1', 's3cret')}\n")
    out = subprocess.run(["curl", "-sS", "-i", url(proxy, "/secret/page")], capture_output=True,
                         timeout=20)
    head = out.stdout.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b'\r\nWWW-Authenticate: Basic realm="private"' in head
    assert backend.requests == []
    out = subprocess.run(["curl", "-sS", "-u", "alice:s3cret", url(proxy, "/secret/page")],
                         capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert len(backend.requests) == 1
    assert backend.requests[0].header(b"x-remote-user") == b"alice"
    assert backend.requests[0].header(b"authorization").startswith(b"Basic ")


def test_requests_with_each_crypt_format(proxy, backend):
    users = {"md5": "-1", "sha256": "-5", "sha512": "-6", "apr1": "-apr1"}
    write_users(proxy, "".join(f"{u}:{openssl_passwd(f, u + '-pw')}\n" for u, f in users.items())
                + "plain:{PLAIN}plain-pw\n")
    for user in [*users, "plain"]:
        assert requests.get(url(proxy, "/secret/x"), auth=(user, user + "-pw"),
                            timeout=10).status_code == 200
        assert requests.get(url(proxy, "/secret/x"), auth=(user, "wrong"),
                            timeout=10).status_code == 401
    assert len(backend.requests) == len(users) + 1


def test_user_file_edits_apply_without_reload(proxy):
    write_users(proxy, "bob:{PLAIN}one\n")
    assert requests.get(url(proxy, "/secret/"), auth=("bob", "one"), timeout=10).status_code == 200
    write_users(proxy, "bob:{PLAIN}two\n")                       # same size, new inode
    assert requests.get(url(proxy, "/secret/"), auth=("bob", "one"), timeout=10).status_code == 401
    assert requests.get(url(proxy, "/secret/"), auth=("bob", "two"), timeout=10).status_code == 200
    path = proxy.users
    with open(path, "r+") as f:                                   # rewritten in place
        f.write("bob:{PLAIN}six\n")
    assert requests.get(url(proxy, "/secret/"), auth=("bob", "six"), timeout=10).status_code == 200
    os.remove(path)
    assert requests.get(url(proxy, "/secret/"), auth=("bob", "six"), timeout=10).status_code == 403
    assert "htpasswd\" failed (2: No such file or directory)" in proxy.error_log()


def test_error_log_lines(proxy):
    write_users(proxy, "carol:{PLAIN}pw\n")
    requests.get(url(proxy, "/secret/"), timeout=10)
    requests.get(url(proxy, "/secret/"), auth=("carol", "bad"), timeout=10)
    requests.get(url(proxy, "/secret/"), auth=("dave", "pw"), timeout=10)
    log = proxy.error_log()
    assert "[info]" in log and "no user/password was provided for basic authentication" in log
    assert '[error]' in log and 'user "carol": password mismatch' in log
    assert f'user "dave" was not found in "{proxy.users}"' in log


def test_remote_user_in_access_log(proxy):
    write_users(proxy, "erin:{PLAIN}pw\n")
    requests.get(url(proxy, "/secret/a"), auth=("erin", "pw"), timeout=10)
    requests.get(url(proxy, "/secret/b"), auth=("frank", "pw"), timeout=10)
    requests.get(url(proxy, "/readonly/c"), auth=("gina", "x"), timeout=10)   # unchecked: still set
    requests.get(url(proxy, "/readonly/d"), timeout=10)
    proxy.stop()
    lines = proxy.prefix.joinpath("logs", "users.log").read_text().splitlines()
    assert lines == ["erin|GET /secret/a|200", "frank|GET /secret/b|401",
                     "gina|GET /readonly/c|200", "-|GET /readonly/d|200"]


def test_websocket_upgrade_behind_auth_basic(proxy):
    write_users(proxy, f"ws:{openssl_passwd('-6', 'ws-pw')}\n")
    with pytest.raises(InvalidStatus) as info:
        connect(url(proxy, "/wss").replace("http", "ws"), open_timeout=5)
    assert info.value.response.status_code == 401
    assert info.value.response.headers["WWW-Authenticate"] == 'Basic realm="chat"'
    with connect(url(proxy, "/wss").replace("http", "ws"), open_timeout=5, close_timeout=5,
                 additional_headers={"Authorization": requests.auth._basic_auth_str("ws", "ws-pw")}
                 ) as ws:
        ws.send("through the gate")
        assert ws.recv(5) == "through the gate"


def test_limit_except_refuses_other_methods(proxy, backend):
    assert requests.post(url(proxy, "/readonly/x"), data=b"body", timeout=10).status_code == 403
    assert requests.delete(url(proxy, "/readonly/x"), timeout=10).status_code == 403
    assert requests.get(url(proxy, "/readonly/x"), timeout=10).status_code == 200
    assert requests.head(url(proxy, "/readonly/x"), timeout=10).status_code == 200
    assert [r.method for r in backend.requests] == [b"GET", b"HEAD"]
    assert requests.get(url(proxy, "/local-only/"), timeout=10).status_code == 403


def test_auth_delay(proxy, backend):
    write_users(proxy, "hal:{PLAIN}pw\n")
    r = requests.get(url(proxy, "/slow401/"), auth=("hal", "bad"), timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="slow"'
    assert "delaying unauthorized request" in proxy.error_log()
    r = requests.get(url(proxy, "/slow401/"), auth=("hal", "pw"), timeout=10)
    assert r.status_code == 200, proxy.error_log()
    # a client that leaves during the delay costs nothing more; the server keeps answering
    with Connection(proxy.port, timeout=5) as conn:
        conn.send(build_request("GET", "/slow401/"))
    time.sleep(1.5)
    r = requests.get(url(proxy, "/slow401/"), auth=("hal", "pw"), timeout=10)
    assert r.status_code == 200, proxy.error_log()
    assert "[alert]" not in proxy.error_log()


def test_keepalive_connection_after_401(proxy, backend):
    """A 401 keeps the connection: the browser's retry with credentials arrives on it."""
    write_users(proxy, "ivy:{PLAIN}pw\n")
    with Connection(proxy.port, timeout=5) as conn:
        conn.send(build_request("GET", "/secret/1"))
        first = conn.read_response("GET")
        conn.send(build_request("GET", "/secret/2",
                                headers=[(b"Authorization", b"Basic aXZ5OnB3")]))
        second = conn.read_response("GET")
    assert first.status == 401 and first.header("connection") == b"keep-alive"
    assert second.status == 200


SSO_CONF = """
http {
    access_log {prefix}/logs/access.log;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location /app/ {
            auth_request /sso/check;
            auth_request_set $sso_user $upstream_http_x_auth_user;
            proxy_set_header X-User $sso_user;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /ws {
            auth_request /sso/check;
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
        location /slow/ {
            auth_request /sso/slow;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /sso/ {
            internal;
            proxy_pass http://127.0.0.1:{sso_port}/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }
    }
}
"""


@pytest.fixture
def sso():
    """An SSO service in the shape of oauth2-proxy's /oauth2/auth: 401 with a challenge until
    a test routes /check to 202 + X-Auth-User; /slow answers after 3 s."""
    from tests.harness.backend import Backend, Reply
    with Backend("sso") as b:
        b.default = Reply(status=401, headers=[(b"WWW-Authenticate", b'Bearer realm="sso"')],
                          body=b"")
        b.route("/slow", Reply(delay=3, body=b""))
        yield b


def test_sso_in_front_of_an_app_and_a_websocket(start_proxy, backend, echo, sso):
    from tests.harness.backend import Reply
    proxy = start_proxy(SSO_CONF, backend_port=backend.port, ws_port=echo.port, sso_port=sso.port)
    r = requests.get(url(proxy, "/app/x"), timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="sso"'
    with pytest.raises(InvalidStatus) as info:
        connect(url(proxy, "/ws").replace("http", "ws"), open_timeout=5)
    assert info.value.response.status_code == 401
    assert backend.requests == []

    sso.route("/check", Reply(status=202, headers=[(b"X-Auth-User", b"jo")], body=b""))
    r = requests.get(url(proxy, "/app/x?y=1"), cookies={"s": "ok"}, timeout=10)
    assert r.status_code == 200
    assert backend.requests[-1].header(b"x-user") == b"jo"
    checks = [q for q in sso.requests if q.target == b"/check"]
    assert checks[-1].header(b"x-original-uri") == b"/app/x?y=1"
    assert checks[-1].header(b"cookie") == b"s=ok"
    with connect(url(proxy, "/ws").replace("http", "ws"), open_timeout=5, close_timeout=5) as ws:
        ws.send("after sso")
        assert ws.recv(5) == "after sso"
    assert checks[-1].header(b"upgrade") is None        # the check itself is no upgrade


def test_client_leaving_during_the_auth_subrequest(start_proxy, backend, echo, sso):
    proxy = start_proxy(SSO_CONF, backend_port=backend.port, ws_port=echo.port, sso_port=sso.port)
    with Connection(proxy.port, timeout=5) as conn:
        conn.send(build_request("GET", "/slow/x"))
        time.sleep(0.5)
    time.sleep(3.5)                                  # the subrequest's answer comes after
    assert backend.requests == []
    r = requests.get(url(proxy, "/app/y"), timeout=10)   # the worker goes on serving
    assert r.status_code == 401
    proxy.stop()
    log = proxy.access_log()
    assert '"GET /slow/x HTTP/1.1" 499 ' in log
    assert "[alert]" not in proxy.error_log()
