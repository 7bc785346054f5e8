"""log_subrequest and access_log paths with variables (nginx-tests mirror.t): a mirror's
subrequest is logged by its location's access_log only with `log_subrequest on`, with its own
$uri and the main request's $args; a path with variables is rendered for each line (relative to
the prefix). `buffer=` with such a path is refused as by nginx. Run against nginx and ngate."""
import os

from tests.harness.client import request
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    log_format test $uri;
    server {
        listen 127.0.0.1:{port};
        root {dir};
        location / {
            mirror /mirror;
            location /off { mirror off; }
        }
        location /many { mirror /mirror/1; mirror /mirror/2; }
        location /quiet { mirror /silent; }
        location /mirror {
            log_subrequest on;
            access_log {dir}/logs/test$args.log test;
        }
        location /silent { access_log {dir}/logs/silent$args.log test; }
    }
}
"""


def test_mirror_subrequests_logged_to_variable_paths(start_proxy):
    with readable_tmpdir("logsub-") as d:
        os.chmod(d, 0o755)
        (d / "logs").mkdir()
        os.chmod(d / "logs", 0o777)          # nginx's workers (nobody) create the files
        for name in ("index.html", "many", "off", "quiet"):
            (d / name).write_text("")
        proc = start_proxy(CONF, dir=str(d))
        for uri in ("/index.html?1", "/?2", "/off?3", "/many?4", "/quiet?5"):
            assert request(proc.port, "GET", uri).status == 200
        proc.stop()
        logs = d / "logs"
        assert (logs / "test1.log").read_text() == "/mirror\n"
        assert (logs / "test2.log").read_text() == "/mirror\n/mirror\n"   # / and its index
        assert not (logs / "test3.log").exists()
        assert (logs / "test4.log").read_text() == "/mirror/1\n/mirror/2\n"
        assert not (logs / "silent5.log").exists()      # log_subrequest off (the default)
        assert not list(logs.glob("*$*"))               # no file named after the template
