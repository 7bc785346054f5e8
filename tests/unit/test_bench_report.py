"""bench.report: medians over runs, ratios, derived figures (worker scaling), the table."""
import pytest

from bench import cli, report
from bench.loads import Figure

PROXIES = ["nginx", "ngate"]
RPS = Figure("rps", "req/s", "req/s", True, lambda h, p, pid: {}, target=0.5)
LAT = Figure("lat", "p99", "ms", False, lambda h, p, pid: {}, target=2.0)


def runs(*values, cpu=None):
    return [{"value": v, "cpu_pct": cpu} if v is not None else {"value": None, "error": "boom"}
            for v in values]


def test_median_skips_failed_runs():
    assert report.median(runs(3.0, None, 1.0, 2.0)) == 2.0
    assert report.median(runs(None)) is None


def test_ratio_guards():
    assert report.ratio(3.0, 2.0) == 1.5
    assert report.ratio(None, 2.0) is None
    assert report.ratio(3.0, None) is None
    assert report.ratio(3.0, 0) is None


def test_median_each_needs_equal_lengths():
    assert report.median_each([[0, 10, 30], [2, 20, 10], [1, 30, 20]]) == [1, 20, 20]
    assert report.median_each([[1, 2], [1, 2, 3]]) is None
    assert report.median_each([None, None]) is None


def test_summarize_ratio_and_targets():
    results = {"rps": {"nginx": runs(100, 120, 110), "ngate": runs(50, 40, 60)},
               "lat": {"nginx": runs(1.0), "ngate": runs(3.0)}}
    rps, lat = report.summarize([RPS, LAT], results, PROXIES)
    assert (rps["nginx"], rps["ngate"], rps["ratio"]) == (110, 50, pytest.approx(50 / 110))
    assert rps["meets_target"] is False            # 0.45x < 0.5x
    assert lat["ratio"] == 3.0 and lat["meets_target"] is False   # lower is better: 3x > 2x
    assert rps["nginx_errors"] == []


def test_summarize_records_errors_and_missing_figures():
    results = {"rps": {"nginx": runs(100), "ngate": runs(None)}}
    (row,) = report.summarize([RPS, LAT], results, PROXIES)
    assert row["ngate"] is None and row["ratio"] is None and row["meets_target"] is None
    assert row["ngate_errors"] == ["boom"]


def test_derived_scaling_and_per_core():
    w1 = Figure("w1", "", "req/s", True, lambda h, p, pid: {})
    w2 = Figure("w2", "", "req/s", True, lambda h, p, pid: {})
    scaling = Figure("scaling", "", "x", True, None, derived=("w2", "w1", ""))
    per_core = Figure("per_core", "", "x", True, None, derived=("w2", "w1", "_per_core"))
    results = {"w1": {"nginx": runs(1000, cpu=50.0), "ngate": runs(400, cpu=100.0)},
               "w2": {"nginx": runs(1100, cpu=50.0), "ngate": runs(700, cpu=200.0)}}
    rows = {r["name"]: r for r in
            report.summarize([w1, w2, scaling, per_core], results, PROXIES)}
    assert rows["w1"]["ngate_per_core"] == 400.0
    assert rows["scaling"]["nginx"] == pytest.approx(1.1)
    assert rows["scaling"]["ngate"] == pytest.approx(1.75)
    assert rows["scaling"]["ratio"] == pytest.approx(1.75 / 1.1)
    assert rows["per_core"]["nginx"] == pytest.approx(1.1)
    assert rows["per_core"]["ngate"] == pytest.approx(0.875)


def test_derived_without_its_inputs_is_left_out():
    scaling = Figure("scaling", "", "x", True, None, derived=("w2", "w1", ""))
    assert report.summarize([scaling], {}, PROXIES) == []


def test_table_shows_ratio_verdicts_and_errors():
    results = {"rps": {"nginx": runs(100), "ngate": runs(60, None)}}
    summary = report.summarize([RPS], results, PROXIES)
    meta = {"runs": 2, "duration_s": 1.0, "pinning": None, "fd_limit": 1024,
            "loadavg_start": (0.5, 0.4, 0.3), "loadavg_end": (1.25, 0.5, 0.3),
            "nginx": "nginx/1.22.1", "ngate_commit": "abc1234"}
    text = report.table(summary, meta, PROXIES)
    row = next(ln for ln in text.splitlines() if ln.startswith("rps "))
    assert "0.60x ok" in row and ">=0.5x" in row
    assert "! rps ngate: boom" in text
    assert "loadavg(1 min) 0.50 -> 1.25" in text


def test_select_groups_and_derived_inputs():
    names = [f.name for f in cli.select("workers_scaling", False)]
    assert names == ["http_keepalive_w1", "http_keepalive_w2", "workers_scaling"]
    assert [f.name for f in cli.select("tls", False)] == ["tls_handshake", "https_keepalive"]
    assert cli.select(None, False) == list(cli.loads.FIGURES)
    assert len(cli.select(None, True)) == len(cli.ALL_FIGURES)
    with pytest.raises(ValueError, match="nope"):
        cli.select("http_keepalive,nope", False)
