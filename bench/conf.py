"""The nginx.conf files: one for the backend nginx, one shared verbatim by nginx and ngate."""
import os

SMALL_BODY = "ok\n"
STATIC_NAME = "64k.bin"
STATIC_SIZE = 64 * 1024

BACKEND_CONF = """\
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{ return 200 "{body}"; }}
        location /static/ {{ root {prefix}/www; }}
    }}
}}
"""

# The proxy under test. nginx and ngate read this same file: any difference is a bug.
PROXY_CONF = """\
worker_processes {workers};
worker_rlimit_nofile 20000;
pid logs/nginx.pid;
error_log logs/error.log warn;

events {{
    worker_connections 16000;
}}

http {{
    access_log off;
    keepalive_requests 1000000;

    upstream http_backend {{
        server 127.0.0.1:{http_port};
        keepalive 32;
    }}

    upstream ws_backend {{
        server 127.0.0.1:{ws_port};
    }}

    server {{
        listen 127.0.0.1:{port} backlog=4096;

        location / {{
            proxy_pass http://http_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}

        location /ws {{
            proxy_pass http://ws_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


def write_backend(prefix, port, workers=1):
    """Backend nginx prefix: config plus the 64 KiB static file, readable by `nobody`."""
    www = os.path.join(prefix, "www", "static")
    os.makedirs(www)
    for d in (os.path.join(prefix, "www"), www):
        os.chmod(d, 0o755)
    with open(os.path.join(www, STATIC_NAME), "wb") as f:
        f.write(os.urandom(STATIC_SIZE))
    os.chmod(os.path.join(www, STATIC_NAME), 0o644)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(BACKEND_CONF.format(prefix=prefix, port=port, workers=workers,
                                    body=SMALL_BODY.replace("\n", "\\n")))
    return path


def write_proxy(prefix, port, http_port, ws_port, workers=1):
    """The proxy's nginx.conf under `prefix` (which must have logs/), from the one template."""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(PROXY_CONF.format(port=port, http_port=http_port, ws_port=ws_port,
                                  workers=workers))
    return path
