"""bench scenarios: the multi-worker configs come from the main template, one directive apart."""
from bench import loads, workers


class FakeHarness:
    """Stands in for bench.cli.Harness: backends already running at fixed ports."""

    def backends(self, key="main", workers=1):
        return 18001, 18002


def written(scenario, tmp_path, name):
    prefix = tmp_path / name
    prefix.mkdir()
    with open(scenario.write(FakeHarness(), str(prefix), 18080)) as f:
        return f.read().splitlines()


def test_worker_configs_differ_only_in_worker_processes(tmp_path):
    one = written(workers.scenario(1), tmp_path, "w1")
    two = written(workers.scenario(2), tmp_path, "w2")
    diff = [(a, b) for a, b in zip(one, two) if a != b]
    assert len(one) == len(two)
    assert diff == [("worker_processes 1;", "worker_processes 2;")]


def test_one_worker_config_is_the_main_config(tmp_path):
    assert written(workers.scenario(1), tmp_path, "w1") == written(loads.MAIN, tmp_path, "main")


def test_main_config_points_at_the_backends(tmp_path):
    text = "\n".join(written(loads.MAIN, tmp_path, "main"))
    assert "listen 127.0.0.1:18080 backlog=4096;" in text
    assert "server 127.0.0.1:18001;" in text and "server 127.0.0.1:18002;" in text


def test_worker_figures_run_unpinned():
    assert not workers.scenario(2).pinned and loads.MAIN.pinned
