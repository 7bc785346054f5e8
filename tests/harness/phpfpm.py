"""A real php-fpm for tests: generated config in a temp dir, TCP and unix listeners, a docroot.

    with PhpFpm(tmp_path) as fpm:
        fpm.script("info.php", "<?php echo 1;")
        ... fastcgi_pass 127.0.0.1:{fpm.port} / unix:{fpm.sock}, root {fpm.docroot} ...

Two pools (one per listener), `pm = static` with `children` children each (an idle kept-alive
FastCGI connection holds a child: fastcgi_keep_conn tests need spares), output buffering off (so
PHP's flush() reaches the FastCGI connection), uploads up to 64 MB. The docroot and the socket's
directory are world-readable (nginx's workers run as `nobody`). A missing php-fpm skips the test,
or fails it under CI=true.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import accepts, free_port, terminate

PHP_FPM_BIN = os.environ.get("PHP_FPM_BIN", "/usr/sbin/php-fpm8.2")

_POOL = """\
[{name}]
user = {user}
listen = {listen}
listen.mode = 0666
pm = static
pm.max_children = {children}
catch_workers_output = no
clear_env = yes
php_admin_value[output_buffering] = 0
php_admin_value[upload_max_filesize] = 64M
php_admin_value[post_max_size] = 64M
php_admin_value[max_input_time] = 30
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[error_reporting] = E_ALL
php_admin_value[upload_tmp_dir] = {tmp}
php_admin_value[session.save_path] = {tmp}
"""


def require_php_fpm() -> None:
    import pytest
    if not os.access(PHP_FPM_BIN, os.X_OK):
        message = f"php-fpm not found at {PHP_FPM_BIN}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class PhpFpm:
    """php-fpm listening on 127.0.0.1:`port` and on the unix socket `sock`."""

    def __init__(self, base: Path, children: int = 5, start_timeout: float = 10.0) -> None:
        self.dir = Path(base) / "php-fpm"
        self.docroot = self.dir / "html"
        self.port = free_port()
        # pytest's temp dirs are private to root: the socket lives where `nobody` can reach it
        self.sock_dir = Path(tempfile.mkdtemp(prefix="ngate-fpm-"))
        self.sock_dir.chmod(0o755)
        self.sock = str(self.sock_dir / "php-fpm.sock")
        self.children = children
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    def script(self, name: str, code: str) -> Path:
        path = self.docroot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
        path.chmod(0o644)
        return path

    def config(self) -> str:
        tmp = self.dir / "tmp"
        user = "root" if os.geteuid() == 0 else "nobody"
        head = (f"[global]\npid = {self.dir}/php-fpm.pid\nerror_log = {self.dir}/php-fpm.log\n"
                "daemonize = no\n\n")
        return head + "".join(_POOL.format(name=name, user=user, listen=listen, tmp=tmp,
                                           children=self.children)
                              for name, listen in (("tcp", f"127.0.0.1:{self.port}"),
                                                   ("unix", self.sock)))

    def start(self) -> "PhpFpm":
        require_php_fpm()
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.docroot.mkdir(parents=True, exist_ok=True)
        for d in (self.dir, self.docroot):
            d.chmod(0o755)
        conf = self.dir / "php-fpm.conf"
        conf.write_text(self.config())
        self._out = open(self.dir / "stdout-stderr.log", "wb")
        self.proc = subprocess.Popen([PHP_FPM_BIN, "-F", "-R", "-y", str(conf)],
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not (accepts(self.port) and os.path.exists(self.sock)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"php-fpm did not start\n{log}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
        self._out.close()
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    def log(self) -> str:
        out = []
        for name in ("php-fpm.log", "stdout-stderr.log"):
            p = self.dir / name
            if p.exists():
                out.append(p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def __enter__(self) -> "PhpFpm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
