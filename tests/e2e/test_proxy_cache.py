"""proxy_cache end to end on ngate with two workers: what the keys zone shares between them
(min_uses, the lock), that an entry is only ever served for its own key, the max_size manager,
and `-t` errors. (tests/differential/test_proxy_cache.py compares the behaviours with nginx.)"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.harness.backend import Backend, Reply
from tests.harness.client import request
from tests.harness.paths import readable_tmpdir
from tests.harness.processes import REPO_ROOT, ProxyProcess

CONF = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log {prefix}/logs/access.log;
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=one:1m;
    proxy_cache_path {prefix}/small keys_zone=small:1m max_size=25k;
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        add_header X-Cache $upstream_cache_status always;
        add_header X-Pid $pid always;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache one;
            proxy_cache_valid 1h;
        }
        location /uses/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache one;
            proxy_cache_valid 1h;
            proxy_cache_min_uses 3;
        }
        location /lock/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache one;
            proxy_cache_valid 1h;
            proxy_cache_lock on;
        }
        location /small/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache small;
            proxy_cache_valid 1h;
        }
    }
}
"""


@pytest.fixture
def setup():
    with readable_tmpdir("ngate-cache-e2e-") as base, Backend() as backend:
        proc = ProxyProcess("ngate", CONF, base / "ngate", backend_port=backend.port)
        proc.start()
        try:
            yield proc, backend
        finally:
            proc.stop()


def get(proc, target: str):
    return request(proc.port, "GET", target, host=b"localhost")


def test_min_uses_counts_across_workers(setup):
    proc, backend = setup
    statuses, pids = [], set()
    for _ in range(4):                  # fresh connections: both workers take some
        r = get(proc, "/uses/x")
        statuses.append(r.header("X-Cache"))
        pids.add(r.header("X-Pid"))
    # per-worker counts would need three uses in one worker before storing
    assert statuses == [b"MISS", b"MISS", b"MISS", b"HIT"]
    assert len([r for r in backend.requests if r.target == b"/uses/x"]) == 3


def test_an_entry_is_served_for_its_own_key_only(setup):
    proc, backend = setup
    backend.route("/k/a", Reply(body=b"A"))
    assert get(proc, "/k/a").body == b"A"
    assert get(proc, "/k/a").header("X-Cache") == b"HIT"
    # the entry of /k/a now claims to be another key's (as an md5 collision would look)
    key = f"http127.0.0.1:{backend.port}/k/a"
    h = hashlib.md5(key.encode()).hexdigest()
    path = proc.prefix / "cache" / h[-1] / h[-3:-1] / h
    data = path.read_bytes()
    head_end = data.index(b"\n", len(b"NGATE-CACHE 1\n"))
    meta = json.loads(data[len(b"NGATE-CACHE 1\n"):head_end])
    meta["key"] = "http127.0.0.1:1/other"
    os.chmod(path, 0o644)
    path.write_bytes(b"NGATE-CACHE 1\n" + json.dumps(meta).encode() + b"\n" + b"B")
    r = get(proc, "/k/a")
    assert (r.header("X-Cache"), r.body) == (b"MISS", b"A")
    # a truncated entry is a miss too
    path.write_bytes(data[:head_end])
    assert get(proc, "/k/a").header("X-Cache") == b"MISS"


def test_lock_sends_one_request_upstream(setup):
    proc, backend = setup
    backend.route("/lock/slow", Reply(body=b"slow", delay=0.5))
    results = []

    def fetch():
        results.append(get(proc, "/lock/slow"))
    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.header("X-Cache") for r in results) == [b"HIT", b"HIT", b"MISS"]
    assert all(r.body == b"slow" for r in results)
    assert len([r for r in backend.requests if r.target == b"/lock/slow"]) == 1


def test_max_size_evicts_least_recently_used(setup):
    proc, backend = setup
    for i in range(5):
        backend.route(f"/small/{i}", Reply(body=b"x" * 10000))
        assert get(proc, f"/small/{i}").header("X-Cache") == b"MISS"
        os.utime(entry_file(proc, i), (time.time() - 10 + i,) * 2)    # used in this order

    def cached() -> int:
        files = [os.path.join(d, f) for d, _, names in os.walk(proc.prefix / "small")
                 for f in names if ".tmp" not in d]
        return sum(os.path.getsize(f) for f in files)
    # the manager's first pass found the cache empty: nginx's next is 10 s later
    deadline = time.monotonic() + 30
    while cached() > 25 * 1024 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cached() <= 25 * 1024
    assert get(proc, "/small/4").header("X-Cache") == b"HIT"     # the newest stays
    assert get(proc, "/small/0").header("X-Cache") == b"MISS"    # the oldest went


def entry_file(proc, i: int) -> str:
    """The cache file of /small/<i> (the key is proxy_cache_key's default, md5 with no levels)."""
    for d, _, names in os.walk(proc.prefix / "small"):
        for f in names:
            p = os.path.join(d, f)
            if ".tmp" not in d and f"/small/{i}".encode() in open(p, "rb").read(4096):
                return p
    raise AssertionError(f"no cache file for /small/{i}")


def _ngate_t(tmp_path, http: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n" + http + "\n}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "ngate", "-t", "-p", str(tmp_path), "-c",
                           str(conf)], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("http,error", [
    ("server { listen 8080; location / { proxy_pass http://127.0.0.1:1; proxy_cache nope; } }",
     '"proxy_cache" zone "nope" is unknown in {conf}:3'),
    ("proxy_cache_path c levels=3 keys_zone=a:1m;", 'invalid "levels" "levels=3" in {conf}:3'),
    ("proxy_cache_path c levels=1:2;", '"proxy_cache_path" must have "keys_zone" parameter in {conf}:3'),
    ("proxy_cache_path c keys_zone=a:1m bogus=1;", 'invalid parameter "bogus=1" in {conf}:3'),
    ("proxy_cache_path c keys_zone=a:1m; proxy_cache_path d keys_zone=a:1m;",
     'duplicate zone "a" in {conf}:3'),
    ("proxy_cache_methods GET PUT;", 'invalid value "PUT" in {conf}:3'),
    ("proxy_cache_use_stale sometimes;", 'invalid value "sometimes" in {conf}:3'),
    ("proxy_cache_valid 200 soon;", 'invalid time value "soon" in {conf}:3'),
])
def test_config_errors(tmp_path, http, error):
    r = _ngate_t(tmp_path, http)
    assert r.returncode == 1
    assert "ngate: [emerg] " + error.format(conf=tmp_path / "nginx.conf") in r.stderr, r.stderr


def test_version_lists_the_cache():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    r = subprocess.run([sys.executable, "-m", "ngate", "-V"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert "configure arguments" in r.stderr + r.stdout
    assert "--without-http-cache" not in r.stderr + r.stdout
