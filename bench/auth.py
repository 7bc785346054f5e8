"""The cost of auth_basic on the keep-alive figure, next to nginx doing the same.

Usage: python -m bench.auth [--duration 5] [--runs 3]   (= python -m bench --only auth)
The same proxy_pass to the same keep-alive backend as http_keepalive, with `auth_basic` in
front and every request carrying good credentials.

  auth_basic_none  the same location shape and request (credentials sent), no auth_basic:
                   the baseline of the two below
  auth_basic_sha   `{SHA}` entry: the module's own cost (header, user file, lookup, compare)
  auth_basic_apr1  `$apr1$` entry, htpasswd's default: adds 1000 MD5 rounds per request
                   (nginx in C; ngate with hashlib from Python)

The user file holds 100 users; the one logging in is the last, so the lookup scans the file.
"""
import base64
import hashlib
import os
import subprocess
import sys

from .loads import Figure, Scenario, wrk

USER, PASSWORD = "bench-user", "bench-password"

CONF = """\
worker_processes 1;
worker_rlimit_nofile 20000;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 16000; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream http_backend {{
        server 127.0.0.1:{http_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location = / {{ proxy_pass http://http_backend; }}
        location = /none {{ proxy_pass http://http_backend/; }}
        location = /sha {{
            auth_basic "bench";
            auth_basic_user_file users-sha;
            proxy_pass http://http_backend/;
        }}
        location = /apr1 {{
            auth_basic "bench";
            auth_basic_user_file users-apr1;
            proxy_pass http://http_backend/;
        }}
    }}
}}
"""


def user_file(path, last_entry):
    lines = [f"user{i}:{{SHA}}{base64.b64encode(hashlib.sha1(b'x%d' % i).digest()).decode()}"
             for i in range(99)]
    with open(path, "w") as f:
        f.write("\n".join(lines + [f"{USER}:{last_entry}"]) + "\n")
    os.chmod(path, 0o644)


def write_conf(h, prefix, port):
    http_port, _ = h.backends()
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    apr1 = subprocess.run(["openssl", "passwd", "-apr1", PASSWORD], capture_output=True,
                          check=True, text=True).stdout.strip()
    user_file(os.path.join(prefix, "users-sha"), sha)
    user_file(os.path.join(prefix, "users-apr1"), apr1)
    os.chmod(prefix, 0o755)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:      # the same file for both programs
        f.write(CONF.format(port=port, http_port=http_port))
    return path


AUTHORIZATION = "Authorization: Basic " + base64.b64encode(
    f"{USER}:{PASSWORD}".encode()).decode()


def auth_load(path):
    def load(h, port, pid):
        return wrk(h, port, path=path, headers=(AUTHORIZATION,))
    return load


SCENARIO = Scenario("auth", write_conf)
FIGURES = [
    Figure("auth_basic_none", "keep-alive, credentials unchecked", "req/s", True,
           auth_load("/none"), direct=False, scenario=SCENARIO),
    Figure("auth_basic_sha", "keep-alive + auth_basic {SHA}", "req/s", True, auth_load("/sha"),
           direct=False, scenario=SCENARIO),
    Figure("auth_basic_apr1", "keep-alive + auth_basic $apr1$", "req/s", True,
           auth_load("/apr1"), direct=False, scenario=SCENARIO),
]


def main(argv=None):
    from . import cli
    return cli.main(["--only", "auth", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
