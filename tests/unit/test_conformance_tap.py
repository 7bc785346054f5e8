"""The runner's TAP reading and per-file counts (conformance/tap.py, result.py)."""
from conformance import tap
from conformance.result import FileResult

SAMPLE = """\
1..7
ok 1 - proxy request
not ok 2 - proxy body
# Failed test 'proxy body'
#   at proxy.t line 80.
ok 3 - escaped \\# hash
not ok 4 - new behaviour # TODO not yet
ok 5 - fixed early # TODO not yet
ok 6 # skip no IO::Socket::SSL
    ok 1 - an indented subtest line is not counted
ok 7 no dash name
"""


def test_parse_counts_each_kind():
    t = tap.parse(SAMPLE)
    assert t.plan == 7 and t.skip_all is None
    assert [(a.number, a.ok, a.todo, a.skip) for a in t.assertions] == [
        (1, True, False, False), (2, False, False, False), (3, True, False, False),
        (4, False, True, False), (5, True, True, False), (6, True, False, True),
        (7, True, False, False)]
    assert [a.name for a in t.assertions][:3] == ["proxy request", "proxy body", "escaped # hash"]
    assert t.assertions[6].name == "no dash name"
    r = FileResult("proxy.t", t)
    # the passing TODO (5) is a pass, as in nginx's reference scores; the failing one (4) a TODO
    assert (r.plan, r.passed, r.failed, r.todo, r.skip) == (7, 4, 1, 1, 1)
    assert r.passed + r.failed + r.todo + r.skip == r.plan
    assert r.status == "FAIL"


def test_skip_all():
    t = tap.parse("1..0 # SKIP no ssi available\n")
    assert t.skip_all == "no ssi available"
    r = FileResult("x.t", t, fallback_plan=12)
    assert (r.plan, r.passed, r.failed) == (0, 0, 0)
    assert r.status == "SKIP_ALL: no ssi available"


def test_file_dying_after_its_plan_fails_the_unrun_tests():
    r = FileResult("x.t", tap.parse("1..10\nok 1 - a\nok 2 - b\n"), exit_code=255)
    assert (r.passed, r.failed) == (2, 8)


def test_file_dying_before_its_plan_uses_nginx_plan():
    r = FileResult("x.t", tap.parse("ok 1 - a\n"), exit_code=255, fallback_plan=6)
    assert (r.plan, r.passed, r.failed) == (6, 1, 5)
    assert r.status == "FAIL"
    nothing = FileResult("y.t", tap.parse(""), exit_code=2)
    assert (nothing.plan, nothing.failed, nothing.status) == (0, 0, "exit 2")


def test_timeout_and_bail_out():
    r = FileResult("x.t", tap.parse("1..3\nok 1 - a\n"), exit_code=None)
    assert r.timed_out and r.status == "TIMEOUT" and r.failed == 2
    b = FileResult("x.t", tap.parse("1..3\nBail out!  no binary\n"), exit_code=255)
    assert b.tap.bail_out == "no binary" and b.status == "BAIL_OUT: no binary"


def test_numbers_missing_are_counted_in_order():
    t = tap.parse("1..2\nok - first\nnot ok - second\n")
    assert [(a.number, a.name) for a in t.assertions] == [(1, "first"), (2, "second")]
