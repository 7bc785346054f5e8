"""bench.ws_many: the config both proxies read accepts 9,000 tunnels, and ngate compiles it."""
import re
import subprocess
import sys

from bench import ws_many


def test_config_allows_the_tunnels_with_nginx_headroom(tmp_path):
    text = open(ws_many.write_conf(str(tmp_path), 18080, [18001, 18002], False)).read()
    conns = int(re.search(r"worker_connections (\d+);", text).group(1))
    nofile = int(re.search(r"worker_rlimit_nofile (\d+);", text).group(1))
    # two connections a tunnel; nginx drops idle ones below 1/16 free connections
    assert 2 * 9000 < conns * 15 / 16 and conns <= nofile
    assert "server 127.0.0.1:18001;" in text and "server 127.0.0.1:18002;" in text
    assert "access_log off;" in text


def test_config_with_access_log_is_valid_for_ngate(tmp_path):
    (tmp_path / "logs").mkdir()
    path = ws_many.write_conf(str(tmp_path), 18080, [18001], True)
    assert "access_log logs/access.log;" in open(path).read()
    r = subprocess.run([sys.executable, "-m", "ngate", "-t", "-p", str(tmp_path) + "/", "-c", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
