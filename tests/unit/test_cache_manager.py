"""The cache manager's passes (ngate/cache/manager.py) on real files: nginx's order (inactive
first, then least recently used while at max_size or the keys zone's watermark), manager_files
per pass, the wait it asks for, one holder of a zone's lock; proxy_cache_path's manager_*."""
import os
import time

import pytest

from ngate.cache import manager
from ngate.cache.config import CachePath
from ngate.config import ConfigError


def zone(tmp_path, size=1 << 20, **kw) -> CachePath:
    cp = CachePath("z")
    cp.path, cp.size = str(tmp_path / "cache"), size
    cp.manager_threshold = 3600          # no pass is cut short by time in these tests
    for k, v in kw.items():
        setattr(cp, k, v)
    os.makedirs(cp.path, exist_ok=True)
    return cp


def entries(cp, n, age=0.0):
    """n entry files, the first the least recently used."""
    now = time.time() - age
    names = []
    for i in range(n):
        p = os.path.join(cp.path, f"{i:02d}")
        with open(p, "wb") as f:
            f.write(b"x" * 10)
        os.utime(p, (now - n + i, now - n + i))
        names.append(f"{i:02d}")
    return names


def left(cp):
    return sorted(n for n in os.listdir(cp.path) if n != ".tmp")


def test_max_size_zero_removes_manager_files_per_pass_oldest_first(tmp_path):
    cp = zone(tmp_path, max_size=0, manager_files=2, manager_sleep=5.0)
    entries(cp, 5)
    zm = manager.ZoneManager(cp)
    assert zm.run() == 5.0                       # manager_files reached: sleep
    assert left(cp) == ["02", "03", "04"]
    assert zm.run() == 5.0
    assert left(cp) == ["04"]
    zm.run()
    assert left(cp) == []
    assert zm.run() == 10.0                      # empty: nginx waits 10 s


def test_below_max_size_nothing_is_removed_and_the_wait_is_the_next_expiry(tmp_path):
    cp = zone(tmp_path, max_size=3 * 4096, inactive=600)
    entries(cp, 3)
    assert manager.ZoneManager(cp).run() == 10.0  # the next expiry is far: at most 10 s
    assert left(cp) == ["01", "02"]                # at max_size (3 blocks of 4 KiB): one goes
    cp2 = zone(tmp_path / "b", max_size=4 * 4096, inactive=600)
    entries(cp2, 3)
    assert manager.ZoneManager(cp2).run() == 10.0
    assert len(left(cp2)) == 3


def test_inactive_entries_go_first_and_the_wait_counts_to_the_next(tmp_path):
    cp = zone(tmp_path, inactive=100)
    entries(cp, 3, age=200)                      # unused for 200 s: expired
    fresh = os.path.join(cp.path, "fresh")
    open(fresh, "wb").close()
    os.utime(fresh, (time.time() - 97, time.time() - 97))
    wait = manager.ZoneManager(cp).run()
    assert left(cp) == ["fresh"]
    assert 0 < wait <= 3.5


def test_keys_zone_watermark(tmp_path):
    cp = zone(tmp_path, size=2 * 4096 + 8 * 128)  # holds 8 entries
    zm = manager.ZoneManager(cp)
    assert zm.capacity == 8
    entries(cp, 6)
    zm.run()
    assert len(left(cp)) == 6 and zm.watermark is None
    entries(cp, 10)                                # full: kept below 7/8 of it from now on
    zm.run()
    assert zm.watermark == 7 and left(cp) == ["04", "05", "06", "07", "08", "09"]


def test_one_worker_holds_a_zone(tmp_path):
    cp = zone(tmp_path)
    a, b = manager.ZoneManager(cp), manager.ZoneManager(cp)
    assert a.locked() and not b.locked()
    a.release()
    assert b.locked()
    b.release()


@pytest.mark.parametrize("params,error", [
    ("manager_files=0", 'invalid manager_files value "manager_files=0"'),
    ("manager_files=x", 'invalid manager_files value "manager_files=x"'),
    ("manager_sleep=1x", 'invalid manager_sleep value "manager_sleep=1x"'),
])
def test_proxy_cache_path_manager_errors(tmp_path, params, error):
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}} http {{ proxy_cache_path {tmp_path}/c keys_zone=z:1m {params}; }}")
    from ngate.config import load_config
    with pytest.raises(ConfigError, match=error):
        load_config(str(conf), str(tmp_path))


def test_proxy_cache_path_manager_values(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}} http {{ proxy_cache_path {tmp_path}/c keys_zone=z:1m max_size=0 "
                    "manager_files=2 manager_sleep=5 manager_threshold=10; "
                    f"proxy_cache_path {tmp_path}/d keys_zone=y:1m; }}")
    from ngate.config import load_config
    z, y = load_config(str(conf), str(tmp_path)).cache_paths
    assert (z.max_size, z.manager_files, z.manager_sleep, z.manager_threshold) == (0, 2, 5, 10)
    assert (y.max_size, y.manager_files, y.manager_sleep, y.manager_threshold) == \
        (None, 100, 0.05, 0.2)
