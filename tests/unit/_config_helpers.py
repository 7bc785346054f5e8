"""Helpers for the config unit tests: write a small nginx.conf and load it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from ngate.config.loader import load_config
from ngate.errors import ConfigError

NGINX = "/usr/sbin/nginx"


def write_conf(tmp_path, http: str, main: str = "events {}\n") -> str:
    """events on line 1, `http {` on line 2: the http body starts on line 3."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(main + "http {\n" + http + "\n}\n")
    return str(conf)


def load_http(tmp_path, http: str, **kw):
    return load_config(write_conf(tmp_path, http), str(tmp_path), **kw)


def ngate_error(conf: str, prefix: str) -> str:
    try:
        load_config(conf, prefix)
    except ConfigError as e:
        return str(e)
    return "OK"


def nginx_error(conf: str, prefix: str) -> str:
    """What `nginx -t` says, as `<message> in <file>:<line>`, or OK."""
    if shutil.which(NGINX) is None and not os.path.exists(NGINX):
        raise AssertionError("nginx is not installed")
    r = subprocess.run([NGINX, "-t", "-q", "-p", prefix + "/", "-c", conf,
                        "-g", f"pid {prefix}/t.pid; error_log stderr;"],
                       capture_output=True, text=True, timeout=30)
    m = re.search(r"\[emerg\] \d+#\d+: (.*)", r.stderr)
    return m.group(1) if m else "OK"


def nginx_available() -> bool:
    return os.path.exists(NGINX)
