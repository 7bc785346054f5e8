"""The static module's per-worker head cache (ngate/static/filemeta.py) never hides a change:
every request stats the opened file, so new content, size, mtime or a retargeted symlink are seen
by the very next request, and under `disable_symlinks on` a symlink that appears anywhere in the
path is refused by the very next request.

One HttpConnection on a fake transport (no sockets): each request's response is what the
transport was given.
"""
from __future__ import annotations

import os
import time

import pytest
import uvloop

from tests.harness.fake_transport import FakeTransport
from ngate.server.connection import HttpConnection
from ngate.server.runtime import WorkerRuntime
from tests.unit._config_helpers import load_http


class Server:
    def __init__(self, tmp_path, root, extra: str = "") -> None:
        config = load_http(tmp_path, f"""
            access_log off;
            error_log {tmp_path}/logs/error.log;
            server {{ listen 127.0.0.1:8080; root {root}; {extra} }}
        """)
        self.loop = uvloop.new_event_loop()
        runtime = WorkerRuntime(config, {}, self.loop)
        self.conn = HttpConnection(runtime, next(iter(runtime.listens.values())))
        self.transport = FakeTransport()
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.conn.connection_made(self.transport)

    def get(self, path: str, method: str = "GET", extra: str = "") -> tuple[bytes, dict, bytes]:
        async def send() -> None:
            self.conn.data_received(f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"
                                    .encode())
        n = len(self.transport.written)
        self.loop.run_until_complete(send())
        out = b"".join(self.transport.written[n:])
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        return lines[0], headers, body

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    server = Server(tmp_path, root)
    yield root, server
    server.close()


def test_new_content_size_and_mtime_are_seen_at_once(site):
    root, server = site
    status, h, body = server.get("/a.txt")
    assert status == b"HTTP/1.1 200 OK" and body == b"first\n" and h[b"Content-Length"] == b"6"
    (root / "a.txt").write_bytes(b"second!\n")
    os.utime(root / "a.txt", (1_000_000_000, 1_000_000_000))
    status, h, body = server.get("/a.txt")
    assert body == b"second!\n" and h[b"Content-Length"] == b"8"
    assert h[b"Last-Modified"] == b"Sun, 09 Sep 2001 01:46:40 GMT"
    assert h[b"ETag"] == b'"3b9aca00-8"'
    # same size, same mtime: the head may come from the cache, the body never does
    (root / "a.txt").write_bytes(b"third!!\n")
    os.utime(root / "a.txt", (1_000_000_000, 1_000_000_000))
    assert server.get("/a.txt")[2] == b"third!!\n"


def test_heads_match_an_uncached_response(site):
    root, server = site
    first = server.get("/a.txt")
    again = server.get("/a.txt")
    assert first[0] == again[0] and first[2] == again[2]
    assert list(first[1]) == list(again[1]) == [b"Server", b"Date", b"Content-Type",
                                                b"Content-Length", b"Last-Modified",
                                                b"Connection", b"ETag", b"Accept-Ranges"]
    head = server.get("/a.txt", "HEAD")[1]
    del head[b"Date"], first[1][b"Date"]     # a second may pass between the two
    assert head == first[1]
    assert server.get("/a.txt", "POST")[0] == b"HTTP/1.1 405 Not Allowed"


def test_file_replaced_by_a_directory_redirects(site):
    root, server = site
    assert server.get("/a.txt")[0] == b"HTTP/1.1 200 OK"
    (root / "a.txt").unlink()
    (root / "a.txt").mkdir()
    assert server.get("/a.txt")[0] == b"HTTP/1.1 301 Moved Permanently"
    (root / "a.txt").rmdir()
    assert server.get("/a.txt")[0] == b"HTTP/1.1 404 Not Found"


def test_symlink_retargeted_out_of_the_root_serves_the_new_target(site, tmp_path):
    """disable_symlinks off (nginx's default): links are followed, and a retargeted link is
    seen at once (the entry is keyed by the opened file's fstat)."""
    root, server = site
    (tmp_path / "outside.txt").write_bytes(b"outside\n")
    os.symlink(root / "a.txt", root / "link.txt")
    assert server.get("/link.txt")[2] == b"first\n"
    os.symlink(tmp_path / "outside.txt", root / "link.new")
    os.replace(root / "link.new", root / "link.txt")
    status, h, body = server.get("/link.txt")
    assert status == b"HTTP/1.1 200 OK" and body == b"outside\n" and h[b"Content-Length"] == b"8"


@pytest.fixture
def strict_site(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    server = Server(tmp_path, root, "disable_symlinks on;")
    yield root, server
    server.close()


def test_disable_symlinks_on_refuses_a_file_turned_into_a_symlink(strict_site, tmp_path):
    """The same inode reached through a new symlink after it was served (and cached): the open
    itself is the check, so the next request is refused."""
    root, server = strict_site
    assert server.get("/a.txt")[2] == b"first\n"
    os.rename(root / "a.txt", tmp_path / "moved.txt")
    os.symlink(tmp_path / "moved.txt", root / "a.txt")
    status, _, body = server.get("/a.txt")
    assert status == b"HTTP/1.1 403 Forbidden" and b"first" not in body


def test_disable_symlinks_on_refuses_a_directory_turned_into_a_symlink(strict_site, tmp_path):
    """A directory component that becomes a symlink to the very same directory: the file's stat
    is unchanged, the walk still refuses it (ENOTDIR on the O_NOFOLLOW directory open: 404)."""
    root, server = strict_site
    (root / "d").mkdir()
    (root / "d" / "f.txt").write_bytes(b"deep\n")
    assert server.get("/d/f.txt")[2] == b"deep\n"
    os.rename(root / "d", tmp_path / "d")
    os.symlink(tmp_path / "d", root / "d")
    assert server.get("/d/f.txt")[0] == b"HTTP/1.1 404 Not Found"


# ---------------------------------------------------------------- plain_file

def test_content_handler_is_plain_file_only_without_settings_that_change_the_200(tmp_path):
    from ngate.static import handler
    config = load_http(tmp_path, f"""
        server {{ listen 127.0.0.1:8080; root {tmp_path};
            location /a/ {{ }}
            location /b/ {{ alias {tmp_path}/; }}
            location /c/ {{ root {tmp_path}/$host; }}
            location /d/ {{ add_header X 1; }}
            location /e/ {{ expires 1h; }}
            location /e2/ {{ expires 1h; open_file_cache max=10; }}
            location /d2/ {{ add_header X $host; }}
            location /d3/ {{ add_header ETag '"x"'; }}
            location /d4/ {{ add_header last-modified x; }}
            location /d5/ {{ add_header X 1; open_file_cache max=10; }}
            location /d6/ {{ add_header X 1 always; add_header Y ""; expires max; }}
            location /f/ {{ gzip_static on; }}
            location /g/ {{ disable_symlinks on; }}
            location /h/ {{ sub_filter a b; }}
            location /i/ {{ userid on; }}
        }}""")
    server = config.servers[0]
    content = {loc.pattern: loc.conf.content for loc in server.locations}
    assert server.conf.content is handler.plain_file
    assert content["/a/"] is handler.plain_file
    # expires and add_header without variables: lines of the cached head
    assert all(content[n] is handler.plain_file for n in ("/d/", "/d6/", "/e/"))
    assert all(content[n] is handler.static_handler for n in
               ("/b/", "/c/", "/d2/", "/d3/", "/d4/", "/d5/", "/e2/", "/f/", "/g/", "/h/",
                "/i/"))


REQUESTS = [("GET", "/a.txt"), ("HEAD", "/a.txt"), ("GET", "/empty.txt"), ("HEAD", "/empty.txt"),
            ("GET", "/big.bin"), ("GET", "/d"), ("GET", "/d/"), ("GET", "/nope"),
            ("POST", "/a.txt"), ("PUT", "/a.txt"), ("GET", "/a.txt?x=1"), ("GET", "/d/f.txt"),
            ("GET", "/u.html")]


def test_plain_file_answers_as_static_handler(tmp_path, monkeypatch):
    """The same requests through plain_file and through static_handler (the content handler
    every location would have without it): the same bytes but for Date."""
    from ngate.static import handler
    root = tmp_path / "www"
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"first\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "big.bin").write_bytes(bytes(range(256)) * 1024)
    (root / "d" / "f.txt").write_bytes(b"f\n")
    (root / "u.html").write_bytes(b"<p>\n")
    (root / "d" / "index.html").write_bytes(b"index\n")
    plain = Server(tmp_path, root, "include /etc/nginx/mime.types; charset utf-8;")
    assert plain.conn.runtime.config.servers[0].conf.content is handler.plain_file
    monkeypatch.setattr(handler, "content_handler", lambda conf: handler.static_handler)
    general = Server(tmp_path, root, "include /etc/nginx/mime.types; charset utf-8;")
    assert general.conn.runtime.config.servers[0].conf.content is handler.static_handler
    try:
        for method, path in REQUESTS:
            a, b = plain.get(path, method), general.get(path, method)
            a[1].pop(b"Date"), b[1].pop(b"Date")
            assert a == b, (method, path)
    finally:
        plain.close()
        general.close()


EXPIRES = ["expires 1h;", "expires max;", "expires epoch;", "expires off;", "expires 0;",
           "expires -1h;", "expires modified 1h;", "expires modified -1h;", "expires modified 0;",
           "expires @15h30m;", "expires 1y;", "add_header X-A b;", "add_header X-A b always;",
           'add_header X-E ""; add_header X-B "c d";',
           "expires 1h; add_header Cache-Control public;",
           'add_header X-U "\u00fc\u20ac";', "expires max; add_header X-A 1; add_header X-B 2;"]
CLOCK = 1_765_000_000.25


@pytest.mark.parametrize("settings", EXPIRES)
def test_plain_file_with_expires_answers_as_static_handler(tmp_path, monkeypatch, settings):
    """plain_file under `expires` or add_header without variables (their lines in the entry's
    head, per Date second): the same
    bytes as static_handler's for every request, conditional and Connection: close ones
    included; with the clock stopped (Expires follows it) and then moved on a second."""
    import time as time_module
    from ngate.http import respond
    from ngate.http1 import response as resp
    from ngate.static import handler
    clock = [CLOCK]
    monkeypatch.setattr(time_module, "time", lambda: clock[0])
    monkeypatch.setattr(handler, "_time", lambda: clock[0])
    monkeypatch.setattr(respond, "_time", lambda: clock[0])
    monkeypatch.setattr(resp, "DATE", resp._DateCache())
    monkeypatch.setattr(handler, "_DATE", resp.DATE)
    monkeypatch.setattr(handler, "_date_to", 0.0)
    root = tmp_path / "www"
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"first\n")
    os.utime(root / "a.txt", (CLOCK - 100, CLOCK - 100))
    (root / "empty.txt").write_bytes(b"")
    (root / "big.bin").write_bytes(bytes(range(256)) * 1024)
    (root / "d" / "f.txt").write_bytes(b"f\n")
    os.utime(root / "d" / "f.txt", (CLOCK + 7200, CLOCK + 7200))
    (root / "u.html").write_bytes(b"<p>\n")
    (root / "d" / "index.html").write_bytes(b"index\n")
    conf = "include /etc/nginx/mime.types; charset utf-8; " + settings
    plain = Server(tmp_path, root, conf)
    assert plain.conn.runtime.config.servers[0].conf.content is handler.plain_file
    monkeypatch.setattr(handler, "content_handler", lambda conf: handler.static_handler)
    general = Server(tmp_path, root, conf)
    from ngate.static import filemeta
    lm = b"If-Modified-Since: " + filemeta.http_date(int(CLOCK - 100)).encode() + b"\r\n"
    try:
        for step in (0, 0, 1):
            clock[0] += step
            for method, path in REQUESTS + [("GET", "/d/f.txt")]:
                for extra in ("", lm.decode(), "Connection: close\r\n"):
                    a, b = plain.get(path, method, extra), general.get(path, method, extra)
                    assert a == b, (method, path, extra)
                    for s in (plain, general):
                        if s.transport.closed:      # after Connection: close: a new one
                            s.transport = type(s.transport)()
                            s.conn = type(s.conn)(s.conn.runtime, s.conn.listen)
                            s.loop.run_until_complete(s._start())
    finally:
        plain.close()
        general.close()


SAFARI = ("User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Safari/605.1.15\r\n")


@pytest.mark.parametrize("settings, extra", [
    ("keepalive_requests 3;", ""), ("keepalive_timeout 0;", ""),
    ("keepalive_disable safari;", SAFARI), ("keepalive_disable safari;", ""),
    ("keepalive_disable msie6;", SAFARI)])
def test_plain_file_ends_keep_alive_as_static_handler(tmp_path, monkeypatch, settings, extra):
    """plain_file's written-out check_keepalive: the same Connection line as static_handler's,
    request by request (keepalive_requests reached, keepalive_timeout 0, keepalive_disable)."""
    from ngate.static import handler
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    plain = Server(tmp_path, root, settings)
    assert plain.conn.runtime.config.servers[0].conf.content is handler.plain_file
    monkeypatch.setattr(handler, "content_handler", lambda conf: handler.static_handler)
    general = Server(tmp_path, root, settings)
    try:
        seen = []
        for method in ("GET", "HEAD", "GET"):
            a, b = plain.get("/a.txt", method, extra), general.get("/a.txt", method, extra)
            a[1].pop(b"Date"), b[1].pop(b"Date")
            assert a == b, method
            seen.append(a[1][b"Connection"])
            if plain.transport.closed:
                break
        assert plain.transport.closed == general.transport.closed
        assert seen[-1] == b"close" if settings != "keepalive_disable msie6;" and (
            extra or "safari" not in settings) else set(seen) == {b"keep-alive"}
    finally:
        plain.close()
        general.close()


def test_plain_file_keep_alive_head_follows_the_date(site, monkeypatch):
    """plain_file keeps an entry's keep-alive head with the Date line it was made with: a new
    second gives a new head, a new entry (the file changed) too."""
    import time as time_module
    from ngate.static import handler
    root, server = site
    now = [1_000_000_000.25]
    monkeypatch.setattr(time_module, "time", lambda: now[0])
    monkeypatch.setattr(handler, "_time", lambda: now[0])
    dates = []
    for t in (1_000_000_000.25, 1_000_000_000.75, 1_000_000_001.0, 1_000_000_000.5,
              1_000_000_003.5):
        now[0] = t
        status, h, body = server.get("/a.txt")
        assert status == b"HTTP/1.1 200 OK" and body == b"first\n"
        assert h[b"Connection"] == b"keep-alive"
        dates.append(h[b"Date"])
    assert dates == [b"Sun, 09 Sep 2001 01:46:40 GMT", b"Sun, 09 Sep 2001 01:46:40 GMT",
                     b"Sun, 09 Sep 2001 01:46:41 GMT", b"Sun, 09 Sep 2001 01:46:40 GMT",
                     b"Sun, 09 Sep 2001 01:46:43 GMT"]
    (root / "a.txt").write_bytes(b"second!\n")
    status, h, body = server.get("/a.txt")
    assert body == b"second!\n" and h[b"Content-Length"] == b"8"
    assert h[b"Date"] == b"Sun, 09 Sep 2001 01:46:43 GMT"


def test_plain_file_heads_with_conditions_or_ranges_leave_its_path(site):
    """plain_file keeps the last request headers it found without If-*, Range or Expect on the
    file's entry: the same head again skips the search; any other head is searched, so a
    conditional or ranged request after plain ones is answered as static_handler does."""
    from ngate.static import filemeta
    root, server = site
    for _ in range(2):
        status, h, body = server.get("/a.txt", extra="Accept: */*\r\n")
        assert status == b"HTTP/1.1 200 OK" and body == b"first\n"
    etag = h[b"ETag"].decode()
    assert filemeta._PLAIN["/a.txt"].plain_hdr is not None
    for extra, status, body in [
            (f"If-None-Match: {etag}\r\n", b"HTTP/1.1 304 Not Modified", b""),
            (f"If-Modified-Since: {h[b'Last-Modified'].decode()}\r\n",
             b"HTTP/1.1 304 Not Modified", b""),
            ('If-Match: "nope"\r\n', b"HTTP/1.1 412 Precondition Failed", None),
            ("Range: bytes=1-2\r\n", b"HTTP/1.1 206 Partial Content", b"ir"),
            ("Accept: */*\r\n", b"HTTP/1.1 200 OK", b"first\n")]:
        got = server.get("/a.txt", extra=extra)
        assert got[0] == status, extra
        assert body is None or got[2] == body, extra


@pytest.mark.parametrize("settings", ["", "server_tokens off; etag off;",
                                      "keepalive_requests 2;"])
def test_304_head_is_build_heads(tmp_path, settings):
    """A 304 without expires, add_header or Vary comes from the entry's parts: the same bytes
    as resp.build_head's (nginx's header order), Date aside."""
    from ngate.http1 import response as resp
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    server = Server(tmp_path, root, settings)
    try:
        h = server.get("/a.txt")[1]
        lm = h[b"Last-Modified"]
        n = len(server.transport.written)
        status = server.get("/a.txt", extra=f"If-Modified-Since: {lm.decode()}\r\n")[0]
        assert status == b"HTTP/1.1 304 Not Modified"
        head = b"".join(server.transport.written[n:])
        date = head.split(b"Date: ", 1)[1].split(b"\r\n", 1)[0]
        want = resp.build_head(
            304, 1, server_tokens="server_tokens off" not in settings, last_modified=lm,
            connection=b"Connection: close\r\n" if "keepalive_requests" in settings
            else b"Connection: keep-alive\r\n",
            headers=[(b"ETag", h[b"ETag"])] if b"ETag" in h else [])
        assert head == want.replace(resp.DATE.get()[6:-2], date)
    finally:
        server.close()


def test_virtual_hosts_with_the_same_uris_keep_their_entries(tmp_path):
    """Two servers serving the same URI from two roots, requests alternating: plain_file's URI
    table holds one of them at a time, and the other's entry is found by its path (no new
    entry per request)."""
    from ngate.static import filemeta
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "s.css").write_bytes(name.encode() * 4)
    config = load_http(tmp_path, f"""
        access_log off;
        error_log {tmp_path}/logs/error.log;
        server {{ listen 127.0.0.1:8080; server_name a; root {tmp_path}/a; }}
        server {{ listen 127.0.0.1:8080; server_name b; root {tmp_path}/b; }}
    """)
    loop = uvloop.new_event_loop()
    runtime = WorkerRuntime(config, {}, loop)
    conn = HttpConnection(runtime, next(iter(runtime.listens.values())))
    transport = FakeTransport()
    made = []
    real = filemeta.FileMeta.__init__

    def counting(self, *args):
        made.append(args[1])
        real(self, *args)

    async def start() -> None:
        conn.connection_made(transport)

    async def send(host: str) -> None:
        conn.data_received(f"GET /s.css HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())

    bodies = []
    try:
        filemeta.FileMeta.__init__ = counting
        loop.run_until_complete(start())
        for i in range(6):
            n = len(transport.written)
            loop.run_until_complete(send("ab"[i % 2]))
            bodies.append(b"".join(transport.written[n:]).partition(b"\r\n\r\n")[2])
    finally:
        filemeta.FileMeta.__init__ = real
        loop.close()
    assert bodies == [b"aaaa", b"bbbb"] * 3
    assert made == ["/s.css", "/s.css"]         # one entry per server, made once


def test_plain_file_conditional_requests_answer_as_static_handler(tmp_path, monkeypatch):
    """If-Modified-Since / If-None-Match alone are decided by plain_file (304 or the 200);
    with If-Match, If-Unmodified-Since or Range static_handler decides: the same bytes as
    static_handler's for each, Date aside, GET and HEAD, if_modified_since modes."""
    from ngate.static import handler
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    os.utime(root / "a.txt", (1_000_000_000, 1_000_000_000))
    lm, old = "Sun, 09 Sep 2001 01:46:40 GMT", "Sat, 08 Sep 2001 01:46:40 GMT"
    etag = '"3b9aca00-6"'
    heads = [f"If-Modified-Since: {lm}\r\n", f"If-Modified-Since: {old}\r\n",
             "If-Modified-Since: junk\r\n", f"If-None-Match: {etag}\r\n",
             'If-None-Match: "x", W/"3b9aca00-6"\r\n', "If-None-Match: *\r\n",
             'If-None-Match: "x"\r\n',
             f"If-None-Match: {etag}\r\nIf-Modified-Since: {old}\r\n",
             f"If-None-Match: {etag}\r\nIf-Modified-Since: {lm}\r\n",
             f"If-Match: {etag}\r\nIf-None-Match: {etag}\r\n",
             f"If-Unmodified-Since: {old}\r\nIf-None-Match: {etag}\r\n",
             f"Range: bytes=0-1\r\nIf-Modified-Since: {old}\r\n"]
    for mode in ("", "if_modified_since before;", "if_modified_since off;", "etag off;"):
        plain = Server(tmp_path, root, mode)
        assert plain.conn.runtime.config.servers[0].conf.content is handler.plain_file
        with monkeypatch.context() as m:
            m.setattr(handler, "content_handler", lambda conf: handler.static_handler)
            general = Server(tmp_path, root, mode)
        try:
            for extra in heads:
                for method in ("GET", "HEAD"):
                    a = plain.get("/a.txt", method, extra)
                    b = general.get("/a.txt", method, extra)
                    a[1].pop(b"Date"), b[1].pop(b"Date")
                    assert a == b, (mode, method, extra)
        finally:
            plain.close()
            general.close()


def test_a_full_table_drops_its_oldest_entry(site, monkeypatch):
    """Both tables: by path (static_handler's, which plain_file's new entries also go to) and
    plain_file's by URI."""
    from ngate.static import filemeta
    root, server = site
    monkeypatch.setattr(filemeta, "MAX_ENTRIES", 3)
    monkeypatch.setattr(filemeta, "_FILES", {})
    monkeypatch.setattr(filemeta, "_PLAIN", {})
    monkeypatch.setattr("ngate.static.handler._FILES", filemeta._FILES)
    monkeypatch.setattr("ngate.static.handler._PLAIN", filemeta._PLAIN)
    for name in "bcde":
        (root / name).write_bytes(name.encode() * 3)
    for name in "bcd":
        assert server.get("/" + name)[2] == name.encode() * 3
    assert [p[-1] for p in filemeta._FILES] == ["b", "c", "d"]
    assert list(filemeta._PLAIN) == ["/b", "/c", "/d"]
    assert server.get("/e")[2] == b"eee"
    assert [p[-1] for p in filemeta._FILES] == ["c", "d", "e"]
    assert list(filemeta._PLAIN) == ["/c", "/d", "/e"]
    assert server.get("/b")[2] == b"bbb"
    assert [p[-1] for p in filemeta._FILES] == ["d", "e", "b"]
    assert list(filemeta._PLAIN) == ["/d", "/e", "/b"]
    assert server.get("/d")[2] == b"ddd"        # still in _PLAIN: no new entry anywhere
    assert [p[-1] for p in filemeta._FILES] == ["d", "e", "b"]


def test_gzip_static_entry_never_hides_a_change(tmp_path):
    """gzip_static's `.gz` entry (kept in the path table by the `.gz`'s fstat key): a new
    content, mtime or inode, a `.gz` removed or turned into a directory is seen by the next
    request; each answer is the one a fresh worker (no entries) gives."""
    import gzip
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"plain\n")
    gz = root / "a.txt.gz"
    extra = "gzip_static on; gzip_vary on;"
    ae = "Accept-Encoding: gzip\r\n"

    def fresh():
        """The answer of a worker with empty tables (this worker's entries are put back)."""
        from ngate.static import filemeta
        saved = dict(filemeta._FILES), dict(filemeta._PLAIN)
        filemeta._FILES.clear()
        filemeta._PLAIN.clear()
        other = Server(tmp_path, root, extra)
        try:
            return other.get("/a.txt", extra=ae)
        finally:
            other.close()
            filemeta._FILES.clear()
            filemeta._PLAIN.clear()
            filemeta._FILES.update(saved[0])
            filemeta._PLAIN.update(saved[1])

    server = Server(tmp_path, root, extra)
    try:
        steps = [
            lambda: gz.write_bytes(gzip.compress(b"first\n", mtime=0)),
            lambda: os.utime(gz, (1_000_000_000, 1_000_000_000)),
            lambda: gz.write_bytes(gzip.compress(b"other\n", mtime=0)),    # same size
            lambda: os.utime(gz, (1_000_000_000, 1_000_000_000)),           # same mtime too
            lambda: (root / "b.gz").write_bytes(gzip.compress(b"third\n", mtime=0))
            or os.utime(root / "b.gz", (1_000_000_000, 1_000_000_000))
            or os.replace(root / "b.gz", gz),                               # another inode
            lambda: gz.unlink(),
            lambda: gz.mkdir(),
        ]
        for step in steps:
            step()
            status, h, body = server.get("/a.txt", extra=ae)
            server.get("/a.txt", extra=ae)          # the entry's second use
            status, h, body = server.get("/a.txt", extra=ae)
            want = fresh()
            del h[b"Date"], want[1][b"Date"]
            assert (status, h, body) == want
            if gz.is_file():
                assert gzip.decompress(body) == gzip.decompress(gz.read_bytes())
                from ngate.static import filemeta
                assert filemeta._FILES[str(gz)].size == len(body)      # kept by the path
            else:
                assert body == b"plain\n"
    finally:
        server.close()
