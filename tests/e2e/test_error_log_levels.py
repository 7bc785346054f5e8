"""error_log in server and location (nginx's ngx_set_connection_log): once a request's location is
chosen, its messages go to the innermost level's error_log, not the main one; log_not_found off
silences the index module's message (nginx-tests index.t, userid.t). Run against nginx and ngate."""
from tests.harness.client import request
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        error_log {prefix}/logs/srv.log;
        root {root}/missing;
        location /plain/ { }
        location /nf/ {
            error_log {prefix}/logs/nf.log;
            location /nf/off/ {
                error_log {prefix}/logs/off.log;
                log_not_found off;
            }
        }
        location /multi/ {
            index first.html second.html;
            error_log {prefix}/logs/multi.log warn;
        }
    }
}
"""


def test_location_and_server_error_logs(start_proxy):
    with readable_tmpdir("errlog-") as base:     # nginx's workers (nobody) must reach the root
        proc = start_proxy(CONF, root=str(base))
        root = base / "missing"
        for uri in ("/nf/", "/nf/off/", "/plain/", "/multi/"):
            assert request(proc.port, "GET", uri).status == 404
        proc.stop()
    logs = proc.prefix / "logs"
    nf = (logs / "nf.log").read_text()
    assert f'"{root}/nf/index.html" is not found (2: No such file or directory)' in nf, nf
    assert "[error]" not in (logs / "off.log").read_text()
    srv = (logs / "srv.log").read_text()
    assert f'"{root}/plain/index.html" is not found' in srv and "/nf/" not in srv, srv
    # the first index file tried is named
    assert f'"{root}/multi/first.html" is not found' in (logs / "multi.log").read_text()
    main = (logs / "error.log").read_text()
    assert "is not found" not in main, main
