"""Broken configs through `ngate -t`, with nginx -t as the oracle (seeded, deterministic).

A realistic config is cut at token boundaries and mutated (tokens dropped, duplicated, swapped,
arguments replaced by bad values, directives moved to the wrong context). For every config nginx
refuses, ngate must exit 1 with exactly one `ngate: [emerg] ...` line, carrying `in file:line`
when nginx's does; for every config, ngate must never raise (no traceback: `cli.main` runs in
process, so any exception fails the test) and never print more than one emerg line.
"""
from __future__ import annotations

import random
import re
import subprocess

import pytest

from ngate import cli
from tests.harness.processes import NGINX_BIN, require_kind

BASE = """\
worker_processes 1;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 64; }
http {
    include {prefix}/mime.types;
    default_type application/octet-stream;
    log_format main '$remote_addr "$request" $status $body_bytes_sent "$http_user_agent"';
    access_log {prefix}/logs/access.log main;
    client_max_body_size 10m;
    keepalive_timeout 30s;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream app {
        server 127.0.0.1:8081 weight=2 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:8082 backup;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:18080 default_server;
        server_name example.test *.example.test;
        root {prefix}/html;
        index index.html;
        error_page 404 /404.html;
        error_page 502 503 = @down;
        location / { try_files $uri $uri/ =404; }
        location /api/ {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 5s;
        }
        location /ws {
            proxy_pass http://127.0.0.1:8083;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
        location ~* \\.(png|jpg)$ { expires 1d; add_header X-Img 1 always; }
        location = /old { return 301 /new; }
        location /r/ {
            if ($arg_x = 1) { return 403; }
            set $t "r-$uri";
            rewrite ^/r/(.*)$ /api/$1 last;
        }
        location @down { return 503 "down\\n"; }
    }
}
"""

TOKEN = re.compile(r"'[^']*'|\"(?:\\\\.|[^\"\\\\])*\"|[{};]|[^\s{};'\"]+")
BAD_VALUES = ["-1", "abc", "10q", "''", "on", "99999999999999999999", "http://", "$nosuchvar",
              "~(", "unix:", "0", "1x", "=", "@", "^~", "127.0.0.1:99999", "'a b'", "${x"]
DIRECTIVES = ["listen", "server_name", "proxy_pass", "return", "rewrite", "location", "server",
              "upstream", "map", "set", "if", "error_page", "root", "alias", "try_files",
              "keepalive", "events", "http", "worker_processes", "include", "add_header",
              "proxy_set_header", "log_format", "access_log", "client_max_body_size", "bogus"]
EMERG = re.compile(r"^ngate: \[emerg\] (.+)$", re.M)
NGINX_EMERG = re.compile(r"\[emerg\] \d+#\d+: (.+)$", re.M)
LOCATED = re.compile(r" in (\S+):(\d+)$")


def tokens(text: str) -> list[re.Match]:
    return list(TOKEN.finditer(text))


def join(parts: list[str]) -> str:
    out = []
    for p in parts:
        out.append(p)
        out.append("\n" if p in (";", "{", "}") else " ")
    return "".join(out)


def mutate(rng: random.Random, parts: list[str]) -> list[str]:
    parts = list(parts)
    i = rng.randrange(len(parts))
    op = rng.randrange(6)
    if op == 0:
        del parts[i]
    elif op == 1:
        parts.insert(i, parts[i])
    elif op == 2:
        j = rng.randrange(len(parts))
        parts[i], parts[j] = parts[j], parts[i]
    elif op == 3 and parts[i] not in ("{", "}", ";"):
        parts[i] = rng.choice(BAD_VALUES)
    elif op == 4:
        parts[i:i] = [rng.choice(DIRECTIVES), rng.choice(BAD_VALUES), ";"]
    else:
        parts[i:i] = [rng.choice(DIRECTIVES), "{", "}"]
    return parts


def cases(prefix: str) -> list[tuple[str, str]]:
    base = BASE.replace("{prefix}", prefix)
    ms = tokens(base)
    out = []
    step = max(1, len(ms) // 100)
    for k in range(0, len(ms), step):                       # truncations at token ends
        out.append((f"cut{k}", base[:ms[k].end()]))
    rng = random.Random(1234)
    parts = [m.group(0) for m in ms]
    for k in range(100):
        mutated = parts
        for _ in range(rng.randint(1, 2)):
            mutated = mutate(rng, mutated)
        out.append((f"mut{k}", join(mutated)))
    return out


def nginx_test(prefix, path) -> tuple[int, str]:
    r = subprocess.run([NGINX_BIN, "-p", f"{prefix}/", "-c", str(path), "-t"],
                       capture_output=True, text=True, timeout=10)
    return r.returncode, r.stderr


def test_broken_configs(tmp_path, capfd):
    require_kind("nginx")
    (tmp_path / "logs").mkdir()
    (tmp_path / "html").mkdir()
    (tmp_path / "mime.types").write_text("types { text/html html; image/png png; }\n")
    path = tmp_path / "nginx.conf"
    problems = []
    refused = 0
    for name, text in cases(str(tmp_path)):
        path.write_text(text)
        n_rc, n_err = nginx_test(tmp_path, path)
        capfd.readouterr()
        rc = cli.main(["-p", f"{tmp_path}/", "-c", str(path), "-t", "-q"])
        err = capfd.readouterr().err
        emergs = EMERG.findall(err)
        if len(emergs) > 1 or (rc == 0) != (not emergs):
            problems.append(f"{name}: rc {rc}, {len(emergs)} emerg lines: {err!r}")
            continue
        if n_rc == 0:
            continue
        refused += 1
        nginx_msg = NGINX_EMERG.search(n_err)
        if rc != 1:
            problems.append(f"{name}: nginx refuses ({nginx_msg and nginx_msg.group(1)}), "
                            f"ngate accepts\n{text}")
        elif nginx_msg and LOCATED.search(nginx_msg.group(1)) and not LOCATED.search(emergs[0]):
            problems.append(f"{name}: no location in {emergs[0]!r} (nginx: {nginx_msg.group(1)})")
    assert refused > 150
    assert not problems, "\n".join(problems[:15]) + f"\n({len(problems)} problems)"


# ---------------------------------------------------------------- hostile values, as a process
# Issue 10: values past nginx's limits, names outside Latin-1, special files, deep nesting and
# bytes that are not UTF-8, spliced into the same config. Each mutant goes through a real
# `python -m ngate -t` (stdin a pipe nobody writes to, so `include /dev/stdin` would hang):
# exit 0 with nothing but warnings said, or exit 1 with exactly one `[emerg]` line (and
# warnings); never a traceback or a
# hang. Seeded and bounded: HOSTILE_CASES processes of about 0.3 s each.

HOSTILE_CASES = 40
HOSTILE_VALUES = [
    "9" * 400, "9" * 5000, "99999999999999999999s", "9223372036854775808", "9223372036854775807",
    "9223372036854775s", "9223372036854775807ms", "8589934592g", "1y", "1M", "\u0663", "\u00b2",
    "\u0663\u0660\u0660", "X-\u023f", "\u023f", "-0", "0x10", "1e9", "'5 6'", "''", "$", "${",
    "$http_\u023f", "=\u0663", "@", "unix:", "127.0.0.1:99999999999999999999", "backlog=-1",
    "rcvbuf=99999999999999999999", "{prefix}/nodir/x.log", "/dev/zero", "(?<\u023f>x)",
]
SPECIAL_INCLUDES = ["/dev/zero", "/dev/stdin", "/proc/self/mem", "/dev/null", "/proc/self/fd/0",
                    "{prefix}", "{prefix}/logs"]
HOSTILE_DIRECTIVES = ["proxy_set_header", "add_header", "fastcgi_param", "proxy_read_timeout",
                      "keepalive_timeout", "client_max_body_size", "proxy_buffer_size", "expires",
                      "return", "error_page", "keepalive_requests", "listen", "access_log",
                      "error_log", "worker_shutdown_timeout", "large_client_header_buffers",
                      "set", "if", "location", "try_files"]


def hostile_mutate(rng: random.Random, parts: list[str]) -> list[str]:
    parts = list(parts)
    i = rng.randrange(len(parts))
    op = rng.randrange(6)
    if op == 0 and parts[i] not in ("{", "}", ";"):
        parts[i] = rng.choice(HOSTILE_VALUES)
    elif op == 1:
        parts[i:i] = ["include", rng.choice(SPECIAL_INCLUDES), ";"]
    elif op == 2:
        args = [rng.choice(HOSTILE_VALUES) for _ in range(rng.randint(1, 3))]
        parts[i:i] = [rng.choice(HOSTILE_DIRECTIVES), *args, ";"]
    elif op == 3:
        depth = rng.choice([50, 400, 3000])
        kind = rng.choice([["location", "/n", "{"], ["if", "($uri)", "{"], ["server", "{"]])
        parts[i:i] = kind * depth + ["}"] * depth
    elif op == 4:
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        parts[i:i] = [noise.decode("latin-1")]
    else:
        parts[i:i] = [rng.choice(HOSTILE_DIRECTIVES), "X-\u023f", rng.choice(HOSTILE_VALUES), ";"]
    return parts


def hostile_cases(prefix: str) -> list[tuple[str, bytes]]:
    base = BASE.replace("{prefix}", prefix)
    parts = [m.group(0) for m in tokens(base)]
    rng = random.Random(20261206)
    out = []
    for k in range(HOSTILE_CASES):
        mutated = parts
        for _ in range(rng.randint(1, 3)):
            mutated = hostile_mutate(rng, mutated)
        text = join(mutated).replace("{prefix}", prefix)
        # noise tokens carry bytes that are not UTF-8: written as the raw bytes
        out.append((f"hostile{k}", text.encode("utf-8", "surrogateescape")
                    if text.isascii() else _raw(text)))
    return out


def _raw(text: str) -> bytes:
    """UTF-8, except that characters U+0080..U+00FF stand for the single bytes of the noise."""
    return b"".join(ch.encode("latin-1") if 0x80 <= ord(ch) <= 0xFF else ch.encode()
                    for ch in text)


def test_hostile_configs_in_a_real_process(tmp_path):
    import os
    import sys
    from tests.harness.processes import REPO_ROOT
    (tmp_path / "logs").mkdir()
    (tmp_path / "html").mkdir()
    (tmp_path / "mime.types").write_text("types { text/html html; image/png png; }\n")
    path = tmp_path / "nginx.conf"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    problems = []
    outcomes = {0: 0, 1: 0}
    r, w = os.pipe()            # stdin: open, never written to
    try:
        for name, data in hostile_cases(str(tmp_path)):
            path.write_bytes(data)
            try:
                res = subprocess.run([sys.executable, "-m", "ngate", "-p", f"{tmp_path}/", "-c",
                                      str(path), "-t", "-q"], stdin=r, capture_output=True,
                                     env=env, timeout=20)
            except subprocess.TimeoutExpired:
                problems.append(f"{name}: hangs")
                continue
            err = res.stderr.decode("utf-8", "replace")
            lines = [ln for ln in err.splitlines() if not ln.startswith("ngate: [warn] ")]
            ok = (res.returncode == 0 and not lines) or (
                res.returncode == 1 and len(lines) == 2 and lines[0].startswith("ngate: [emerg] ")
                and lines[1].endswith(" test failed"))
            if not ok or "Traceback" in err or res.stdout:
                problems.append(f"{name}: rc {res.returncode}: {err[-600:]!r}")
            outcomes[res.returncode] = outcomes.get(res.returncode, 0) + 1
    finally:
        os.close(r)
        os.close(w)
    assert not problems, "\n".join(problems[:10]) + f"\n({len(problems)} problems)"
    assert outcomes[0] >= 3 and outcomes[1] >= 10, outcomes     # the mutants reach both ends
