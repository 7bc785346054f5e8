"""bench.loads: reading wrk's output and deciding whether a run counts."""
import pytest

from bench.loads import check_wrk, parse_wrk

# wrk 4.1.0 --latency against an nginx `return 404` (captured here), plus a Socket errors line
WRK_OUT = """\
Running 1s test @ http://127.0.0.1:18931/x
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   257.79us  569.03us   5.88ms   93.67%
    Req/Sec    54.22k    14.65k   65.43k    80.00%
  Latency Distribution
     50%  116.00us
     75%  137.00us
     90%  274.00us
     99%    3.24ms
  54064 requests in 1.01s, 15.88MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 54064
Requests/sec:  53662.07
Transfer/sec:     15.76MB
"""


def test_parse_wrk_figures():
    raw = parse_wrk(WRK_OUT)
    assert raw["requests_per_sec"] == 53662.07
    assert raw["requests"] == 54064
    assert raw["non_2xx"] == 54064
    assert raw["socket_errors"] == 10


def test_parse_wrk_latency_units_become_ms():
    raw = parse_wrk(WRK_OUT)
    assert raw["p50_ms"] == pytest.approx(0.116)
    assert raw["p90_ms"] == pytest.approx(0.274)
    assert raw["p99_ms"] == pytest.approx(3.24)
    assert parse_wrk(WRK_OUT.replace("3.24ms", "1.50s"))["p99_ms"] == pytest.approx(1500.0)


def test_parse_wrk_clean_run_has_no_errors():
    clean = "\n".join(ln for ln in WRK_OUT.splitlines()
                      if not ln.lstrip().startswith(("Socket errors", "Non-2xx")))
    raw = parse_wrk(clean)
    assert (raw["non_2xx"], raw["socket_errors"]) == (0, 0)
    assert check_wrk(raw) is raw


def test_check_wrk_rejects_failed_and_empty_runs():
    with pytest.raises(RuntimeError, match="54064 non-2xx"):
        check_wrk(parse_wrk(WRK_OUT))
    with pytest.raises(RuntimeError, match="0 requests"):
        check_wrk({"requests": 0, "non_2xx": 0, "socket_errors": 0})


def test_check_wrk_tolerates_one_percent():
    assert check_wrk({"requests": 1000, "non_2xx": 5, "socket_errors": 5})
    with pytest.raises(RuntimeError):
        check_wrk({"requests": 1000, "non_2xx": 6, "socket_errors": 5})
