"""FastCGI to a real php-fpm: the same config and requests through nginx and ngate.

Compared: status line, headers (without Date and Server), framing, body, and what PHP saw in
$_SERVER for the standard params. Each program has its own prefix whose `html` is a symlink to
php-fpm's docroot, so the seed's `root html;` runs unchanged; prefixes and ports are normalised.
nginx gets the stock fastcgi_params/fastcgi.conf in its prefix, ngate none: it falls back to its
bundled copies.
"""
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.harness.client import Connection, build_request
from tests.harness.differential import SIGNATURE_RE
from tests.harness.phpfpm import PhpFpm
from tests.harness.processes import ProxyProcess, free_port, fresh_prefix, require_kind

CONF = """
http {
    access_log logs/access.log;
    log_format ulen "$request_uri $upstream_response_length";
    fastcgi_param SERVER_LEVEL yes;
    fastcgi_param REQUEST_METHOD $request_method;
    fastcgi_param SCRIPT_FILENAME $realpath_root/env.php;
    upstream php_pool { server 127.0.0.1:{fpm_port}; keepalive 4; }
    upstream php_retry { server 127.0.0.1:{dead_port}; server 127.0.0.1:{fpm_port}; }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        client_max_body_size 30m;

        location ~ \\.php$ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_index index.php;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            include fastcgi_params;
        }
        location /unix/ {
            root html;
            fastcgi_pass unix:{fpm_sock};
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location ~ ^/pi/(.+\\.php)(/.*)$ {
            root html;
            fastcgi_split_path_info ^/pi/(.+\\.php)(/.*)$;
            fastcgi_pass php_pool;
            fastcgi_keep_conn on;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/$fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_param EMPTY_SKIPPED $http_x_absent if_not_empty;
            fastcgi_param EMPTY_KEPT $http_x_absent;
        }
        location /idx/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_index env.php;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
            fastcgi_param SCRIPT_NAME_SEEN $fastcgi_script_name;
        }
        location /inherit/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
        }
        location /catch/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_catch_stderr "no such text";
            fastcgi_catch_stderr "custom warning";
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/warn-first.php;
        }
        location /catch-other/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_catch_stderr "no such text";
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/warn-first.php;
        }
        location /noheaders/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_pass_request_headers off;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /hide/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_hide_header X-Secret;
            add_header X-Added yes;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/headers.php;
        }
        location /intercept/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_intercept_errors on;
            error_page 404 = @nf;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/status.php;
        }
        location @nf { return 404 "custom not found\\n"; }
        location /down/ {
            fastcgi_pass 127.0.0.1:{dead_port};
            include fastcgi_params;
        }
        location /nobuf/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_request_buffering off;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /retry/ {
            root html;
            fastcgi_pass php_retry;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /var/ {
            set $php 127.0.0.1:{fpm_port};
            root html;
            fastcgi_pass $php;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /var-unix/ {
            set $php unix:{fpm_sock};
            root html;
            fastcgi_pass $php;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /var-group/ {
            set $php php_pool;
            root html;
            fastcgi_pass $php;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /var-name/ {
            set $php php.example:9000;
            fastcgi_pass $php;
        }
        location /small/ {
            client_max_body_size 10;
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/env.php;
        }
        location /ulen/buffering/ {
            access_log logs/ulen.log ulen;
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/$arg_s;
        }
        location /ulen/nobuffering/ {
            access_log logs/ulen.log ulen;
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_buffering off;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/$arg_s;
        }
        location /slow/ {
            root html;
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_read_timeout 1s;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root/slow.php;
        }
    }
}
"""

STANDARD = ["QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME",
            "REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
            "HTTPS", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "SERVER_ADDR",
            "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "SCRIPT_FILENAME", "PATH_INFO",
            "SERVER_LEVEL", "EMPTY_SKIPPED", "EMPTY_KEPT", "SCRIPT_NAME_SEEN"]

SCRIPTS = {
    "env.php": """<?php
$keys = json_decode('%s');
$out = ["server" => [], "http" => [], "get" => $_GET, "post" => $_POST, "cookie" => $_COOKIE,
        "input" => file_get_contents("php://input"), "remote_port" => isset($_SERVER["REMOTE_PORT"])];
foreach ($keys as $k) { if (array_key_exists($k, $_SERVER)) $out["server"][$k] = $_SERVER[$k]; }
foreach ($_SERVER as $k => $v) { if (strncmp($k, "HTTP_", 5) == 0) $out["http"][$k] = $v; }
ksort($out["http"]);
header("Content-Type: application/json");
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\\n";
""" % json.dumps(STANDARD),
    "headers.php": """<?php
setcookie("a", "1"); setcookie("b", "two", ["path" => "/x", "httponly" => true]);
header("X-One: 1"); header("X-Multi: a"); header("X-Multi: b", false); header("X-Secret: s");
header("Cache-Control: no-store");
echo "headers\\n";
""",
    "status.php": """<?php
http_response_code((int)($_GET["code"] ?? 404)); echo "status body\\n";
""",
    "redirect.php": """<?php
$to = $_GET["to"] ?? "/target";
if (isset($_GET["code"])) header("Location: $to", true, (int)$_GET["code"]); else header("Location: $to");
""",
    "rawstatus.php": """<?php header("Status: 418 I'm a teapot"); echo "tea\\n";""",
    "warn-first.php": """<?php
trigger_error("custom warning", E_USER_WARNING); echo "after\\n";
""",
    "error.php": """<?php
echo "before\\n"; trigger_error("custom warning", E_USER_WARNING);
if (isset($_GET["fatal"])) { undefined_function(); }
echo "after\\n";
""",
    "big.php": """<?php
$chunk = str_repeat("0123456789abcdef", 4096);
for ($i = 0; $i < 80; $i++) { echo $chunk; if ($i %% 10 == 0) flush(); }
""".replace("%%", "%"),
    "upload.php": """<?php
$f = $_FILES["file"] ?? null;
echo json_encode(["name" => $f["name"] ?? null, "size" => $f["size"] ?? null,
                  "md5" => $f ? md5_file($f["tmp_name"]) : null, "error" => $f["error"] ?? null,
                  "field" => $_POST["field"] ?? null]), "\\n";
""",
    "slow.php": """<?php sleep(3); echo "late\\n";""",
    "early.php": """<?php
echo "head sent\\n"; flush();
$in = fopen("php://input", "r"); $n = 0; $h = hash_init("md5");
while (!feof($in)) { $b = fread($in, 65536); $n += strlen($b); hash_update($h, $b); }
echo $n, " ", hash_final($h), "\\n";
""",
    "bighead.php": """<?php header("X-Big: " . str_repeat("b", (int)$_GET["n"])); echo "ok\\n";""",
    "len.php": """<?php $b = "exact\\n"; header("Content-Length: " . strlen($b)); echo $b;""",
}


@pytest.fixture(scope="module")
def base():
    """A directory nginx's workers (`nobody`) can traverse: realpath, client_body_temp_path."""
    path = Path(tempfile.mkdtemp(prefix="ngate-fcgi-diff-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fpm(base):
    with PhpFpm(base) as f:
        for name, code in SCRIPTS.items():
            f.script(name, code)
        yield f


@pytest.fixture(scope="module")
def pair(fpm, base):
    procs = {}
    dead = free_port()
    try:
        for kind in ("nginx", "ngate"):
            require_kind(kind)
            prefix = fresh_prefix(base, kind)
            os.symlink(fpm.docroot, prefix / "html")
            if kind == "nginx":
                for name in ("fastcgi_params", "fastcgi.conf"):
                    shutil.copy(f"/etc/nginx/{name}", prefix / name)
            procs[kind] = ProxyProcess(kind, CONF, prefix, fpm_port=fpm.port, fpm_sock=fpm.sock,
                                       dead_port=dead).start()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def normalise(resp, proc) -> dict:
    """Without Date and Server; prefix, port and status-page signature replaced."""
    body = resp.body.replace(str(proc.prefix).encode(), b"{prefix}")
    body = body.replace(b"%d" % proc.port, b"{port}")
    signed = SIGNATURE_RE.search(body) is not None
    body = SIGNATURE_RE.sub(b"<hr><center>{server}</center>", body)
    headers = []
    for n, v in resp.headers:
        if n.lower() in (b"date", b"server"):
            continue
        if signed and n.lower() == b"content-length":
            v = b"{length}"
        headers.append((n, v.replace(b"%d" % proc.port, b"{port}")))
    return {"status": resp.status_line, "framing": resp.framing, "headers": headers, "body": body}


def run(pair, raw: bytes, method: str = "GET", timeout: float = 10.0) -> dict:
    out = {}
    for kind, proc in pair.items():
        with Connection(proc.port, timeout=timeout) as conn:
            try:
                conn.send(raw)
                out[kind] = normalise(conn.read_response(method), proc)
            except OSError as exc:
                raise AssertionError(f"{kind}: {exc!r}\n{proc.error_log()[-3000:]}") from exc
    return out


def same(pair, raw: bytes, method: str = "GET", **kw) -> dict:
    got = run(pair, raw, method, **kw)
    assert got["ngate"] == got["nginx"], _diff(pair, got)
    return got["nginx"]


def _diff(pair, got) -> str:
    import difflib
    a = json.dumps({k: repr(v) for k, v in got["nginx"].items()}, indent=1).splitlines()
    b = json.dumps({k: repr(v) for k, v in got["ngate"].items()}, indent=1).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "nginx", "ngate", lineterm="")) + \
        "\n--- ngate error.log\n" + pair["ngate"].error_log()[-3000:]


def php_saw(result: dict) -> dict:
    return json.loads(result["body"])


def get(target: str, headers=None) -> bytes:
    return build_request("GET", target, headers=headers)


def test_get_with_query_standard_params(pair):
    r = same(pair, get("/env.php?a=1&b=two%20words&arr[]=x", [(b"X-Custom-Thing", b"v"),
                                                               (b"Cookie", b"c1=v1; c2=v2")]))
    saw = php_saw(r)
    assert saw["server"]["SCRIPT_FILENAME"] == "{prefix}/html/env.php"
    assert saw["server"]["QUERY_STRING"] == "a=1&b=two%20words&arr[]=x"
    assert saw["get"] == {"a": "1", "b": "two words", "arr": ["x"]}
    assert saw["http"]["HTTP_X_CUSTOM_THING"] == "v" and saw["cookie"] == {"c1": "v1", "c2": "v2"}
    assert "SERVER_LEVEL" not in saw["server"] and saw["remote_port"]     # replaced, not merged


def test_post_form(pair):
    body = b"name=ng+ate&list%5B%5D=1&list%5B%5D=2"
    r = same(pair, build_request("POST", "/env.php", body=body, headers=[
        (b"Content-Type", b"application/x-www-form-urlencoded")]))
    saw = php_saw(r)
    assert saw["post"] == {"name": "ng ate", "list": ["1", "2"]}
    assert saw["server"]["CONTENT_LENGTH"] == str(len(body))


def test_post_json(pair):
    body = json.dumps({"k": [1, 2, {"x": "é"}]}).encode()
    saw = php_saw(same(pair, build_request("POST", "/env.php", body=body, headers=[
        (b"Content-Type", b"application/json")])))
    assert saw["input"] == body.decode() and saw["server"]["CONTENT_TYPE"] == "application/json"


def test_chunked_body_is_buffered_with_content_length(pair):
    raw = build_request("POST", "/env.php", headers=[(b"Transfer-Encoding", b"chunked"),
                                                     (b"Content-Type", b"text/plain")])
    raw += b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    saw = php_saw(same(pair, raw))
    assert saw["input"] == "hello world" and saw["server"]["CONTENT_LENGTH"] == "11"


def test_headers_and_cookies(pair):
    r = same(pair, get("/headers.php"))
    names = [n.lower() for n, _ in r["headers"]]
    assert names.count(b"set-cookie") == 2 and names.count(b"x-multi") == 2
    assert b"x-secret" in names


def test_hide_header(pair):
    r = same(pair, get("/hide/x"))
    assert b"x-secret" not in [n.lower() for n, _ in r["headers"]]
    assert r["headers"][-1] == (b"X-Added", b"yes")


@pytest.mark.parametrize("target", ["/status.php?code=404", "/status.php?code=201",
                                    "/status.php?code=500", "/rawstatus.php", "/len.php",
                                    "/missing.php"])
def test_statuses(pair, target):
    same(pair, get(target))


@pytest.mark.parametrize("target", ["/redirect.php", "/redirect.php?to=http://other.test/x",
                                    "/redirect.php?code=301", "/redirect.php?code=307&to=/y"])
def test_redirects(pair, target):
    r = same(pair, get(target))
    assert 300 < int(r["status"].split()[1]) < 400


@pytest.mark.parametrize("target", ["/error.php", "/error.php?fatal=1"])
def test_php_errors_go_to_the_error_log(pair, target):
    same(pair, get(target))
    needle = f'"GET {target} '
    assert logged(pair["ngate"], needle) == logged(pair["nginx"], needle)
    assert 'FastCGI sent in stderr: "PHP message: PHP Warning:  custom warning' \
        in logged(pair["ngate"], needle)[0]


@pytest.mark.parametrize("target, status", [("/catch/x", 502), ("/catch-other/x", 200)])
def test_fastcgi_catch_stderr(pair, target, status):
    """Text in the CGI's stderr before its head makes the response invalid: 502 (or the next
    peer, when fastcgi_next_upstream has invalid_header)."""
    r = same(pair, get(target))
    assert r["status"].split()[1] == str(status).encode()
    needle = f'"GET {target} '
    assert logged(pair["ngate"], needle) == logged(pair["nginx"], needle)


def test_head(pair):
    same(pair, build_request("HEAD", "/headers.php"), method="HEAD")


def test_http10_close_delimited(pair):
    same(pair, build_request("GET", "/headers.php", version="HTTP/1.0"))


def test_path_info_keepalive_group_and_if_not_empty(pair):
    for _ in range(3):      # keep_conn to an upstream with keepalive: the connection is reused
        saw = php_saw(same(pair, get("/pi/env.php/extra/path?q=1")))
    s = saw["server"]
    assert s["PATH_INFO"] == "/extra/path" and s["SCRIPT_FILENAME"] == "{prefix}/html/env.php"
    assert "EMPTY_SKIPPED" not in s and s["EMPTY_KEPT"] == ""
    assert "SERVER_LEVEL" not in s          # the location's own params replace the http level's


def test_fastcgi_index(pair):
    saw = php_saw(same(pair, get("/idx/")))
    assert saw["server"]["SCRIPT_NAME_SEEN"] == "/idx/env.php"


def test_inherited_params_and_realpath_root(pair):
    saw = php_saw(same(pair, get("/inherit/")))
    assert sorted(saw["server"]) == ["REQUEST_METHOD", "SCRIPT_FILENAME", "SERVER_LEVEL"]
    assert not saw["server"]["SCRIPT_FILENAME"].startswith("{prefix}")   # symlink resolved


def test_unix_socket_and_fastcgi_conf(pair):
    saw = php_saw(same(pair, get("/unix/anything?z=1")))
    assert saw["get"] == {"z": "1"} and saw["server"]["DOCUMENT_URI"] == "/unix/anything"


def test_pass_request_headers_off(pair):
    saw = php_saw(same(pair, get("/noheaders/", [(b"X-Custom", b"1")])))
    assert "HTTP_X_CUSTOM" not in saw["http"]


def test_intercept_errors(pair):
    r = same(pair, get("/intercept/?code=404"))
    assert r["body"] == b"custom not found\n"
    same(pair, get("/intercept/?code=200"))


def test_large_streamed_response(pair):
    r = same(pair, get("/big.php"))
    assert len(r["body"]) == 80 * 65536


def test_20mb_upload(pair):
    data = os.urandom(20 * 1024 * 1024)
    boundary = b"----ngateboundary"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nv\r\n"
            b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            + data + b"\r\n--" + boundary + b"--\r\n")
    raw = build_request("POST", "/upload.php", body=body, headers=[
        (b"Content-Type", b"multipart/form-data; boundary=" + boundary)])
    saw = json.loads(same(pair, raw, timeout=30)["body"])
    assert saw == {"name": "big.bin", "size": len(data), "md5": hashlib.md5(data).hexdigest(),
                   "error": 0, "field": "v"}


def logged(proc, needle: str) -> list[str]:
    """The error log's messages about requests containing `needle`, without time, pid,
    connection number and ports."""
    out = []
    for entry in re.split(r"\n(?=\d{4}/\d\d/\d\d )", proc.error_log()):
        if needle in entry and "[error]" in entry:      # entries may span lines (PHP traces)
            msg = re.sub(r"^.*?\[error\] \d+#\d+: \*\d+ ", "", entry)
            out.append(re.sub(r":\d{4,5}\b", ":{port}", msg).rstrip("\n"))
    return out


def test_fpm_down_502(pair):
    same(pair, get("/down/x"))
    nginx, ngate = (logged(pair[k], "/down/x") for k in ("nginx", "ngate"))
    assert ngate == nginx and "connect() failed (111: Connection refused)" in nginx[0]


def test_slow_504(pair):
    r = same(pair, get("/slow/"))
    assert r["status"].startswith(b"HTTP/1.1 504")
    assert logged(pair["ngate"], "/slow/") == logged(pair["nginx"], "/slow/")


def test_chunked_body_without_request_buffering(pair):
    raw = build_request("POST", "/nobuf/", headers=[(b"Transfer-Encoding", b"chunked")])
    same(pair, raw + b"3\r\nabc\r\n0\r\n\r\n")


def test_next_upstream_after_a_dead_server(pair):
    for _ in range(2):
        saw = php_saw(same(pair, get("/retry/?n=1")))
        assert saw["get"] == {"n": "1"}


def test_response_starts_before_the_script_reads_its_input(pair):
    data = os.urandom(3 * 1024 * 1024)
    r = same(pair, build_request("PUT", "/early.php", body=data), timeout=20)
    assert r["body"] == b"head sent\n%d %s\n" % (len(data), hashlib.md5(data).hexdigest().encode())


@pytest.mark.parametrize("n", [1000, 8000])
def test_response_head_limit_is_fastcgi_buffer_size(pair, n):
    r = same(pair, get(f"/bighead.php?n={n}"))
    assert r["status"].startswith(b"HTTP/1.1 502" if n > 4096 else b"HTTP/1.1 200")
    needle = f"/bighead.php?n={n} "
    assert logged(pair["ngate"], needle) == logged(pair["nginx"], needle)


@pytest.mark.parametrize("target", ["/var/?v=1", "/var-unix/?v=1", "/var-group/?v=1"])
def test_fastcgi_pass_with_variables(pair, target):
    assert php_saw(same(pair, get(target)))["get"] == {"v": "1"}


def test_fastcgi_pass_variable_name_without_resolver(pair):
    r = same(pair, get("/var-name/"))
    assert r["status"].startswith(b"HTTP/1.1 502")
    assert logged(pair["ngate"], "/var-name/") == logged(pair["nginx"], "/var-name/")


def test_chunked_body_over_client_max_body_size(pair):
    raw = build_request("POST", "/small/", headers=[(b"Transfer-Encoding", b"chunked")])
    r = same(pair, raw + b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
    assert r["status"].startswith(b"HTTP/1.1 413")
    assert logged(pair["ngate"], "/small/") == logged(pair["nginx"], "/small/")


@pytest.mark.parametrize("target", ["/headers.php", "/len.php", "/rawstatus.php", "/big.php"])
def test_body_bytes_sent_counts_the_chunk_framing(pair, target):
    """$body_bytes_sent in the (combined) access log is what went on the wire after the head,
    chunk sizes and the last chunk included, as nginx counts it. A large response's chunks
    differ (README, differences: nginx's follow its buffers and timing, ngate's php-fpm's
    records): the body is the same, each program's count is its own bytes on the wire, and
    ngate's framing is a chunk per STDOUT record (php-fpm: 65528 + 8 bytes per 64 KiB echoed)."""
    big = target == "/big.php"
    target += "?bbs"
    logged = {}
    bodies = {}
    for kind, proc in pair.items():
        with Connection(proc.port, timeout=20) as conn:
            conn.send(get(target))
            resp = conn.read_response()
            raw = resp.raw
        bodies[kind] = resp.body
        body_len = len(raw) - raw.index(b"\r\n\r\n") - 4
        deadline = time.monotonic() + 10
        while not (line := [l for l in proc.access_log().splitlines() if f" {target} " in l]):
            assert time.monotonic() < deadline, proc.access_log()
            time.sleep(0.02)
        status, sent = line[-1].split('" ', 1)[1].split()[:2]
        assert int(sent) == body_len, (kind, raw[:300], line)
        logged[kind] = (status, sent)
    assert bodies["ngate"] == bodies["nginx"]
    if not big:
        assert logged["ngate"] == logged["nginx"]
        return
    assert logged["ngate"][0] == logged["nginx"][0] == "200"
    assert len(bodies["ngate"]) == 80 * 65536
    # 80 x (a 65528-byte chunk + an 8-byte one) and the last chunk
    assert int(logged["ngate"][1]) == 80 * 65536 + 80 * (len(b"fff8\r\n\r\n") + len(b"8\r\n\r\n")) + 5


@pytest.mark.parametrize("buffering", ["buffering", "nobuffering"])
@pytest.mark.parametrize("script", ["headers.php", "len.php", "big.php"])
def test_upstream_response_length_counts_the_records_as_read(pair, buffering, script):
    """$upstream_response_length of fastcgi_pass is what nginx read after the CGI head, FastCGI
    record headers, padding and END_REQUEST included: the event pipe's read_length with
    fastcgi_buffering on, each recv() in the non-buffered filter with it off (ngx_http_upstream.c
    u->state->response_length), not the decoded body."""
    target = f"/ulen/{buffering}/x?s={script}"
    logged = {}
    for kind, proc in pair.items():
        with Connection(proc.port, timeout=10) as conn:
            conn.send(get(target))
            resp = conn.read_response()
            assert resp.status == 200
        log = proc.prefix / "logs" / "ulen.log"
        deadline = time.monotonic() + 10
        while not (line := [ln for ln in (log.read_text() if log.exists() else "").splitlines()
                            if ln.startswith(target + " ")]):
            assert time.monotonic() < deadline, kind
            time.sleep(0.02)
        logged[kind] = int(line[-1].split()[1])
        # the framing is counted (the 16 bytes of END_REQUEST at least)
        assert logged[kind] >= len(resp.body) + 16, (kind, logged[kind])
    assert logged["ngate"] == logged["nginx"]
