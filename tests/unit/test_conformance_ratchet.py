"""The ratchet's key, check and update (conformance/ratchet.py)."""
from conformance import ratchet, tap
from conformance.ratchet import Entry
from conformance.result import FileResult


def result(file: str, text: str) -> FileResult:
    return FileResult(file, tap.parse(text))


def test_names_are_normalised():
    n = ratchet.normalise
    assert n("proxy to 127.0.0.1:8081 ok") == n("proxy to 127.0.0.1:8347 ok") == \
        "proxy to N.N.N.N:N ok"
    assert n("log /tmp/nginx-test-AbC12xyz/access.log") == "log TESTDIR/access.log"
    assert n("  spaced \t  name ") == "spaced name"


def test_passing_takes_real_passes_only():
    r = result("a.t", "1..4\nok 1 - x 8080\nnot ok 2 - y\nok 3 - z # TODO later\nok 4 # skip no\n")
    assert ratchet.passing([r]) == {Entry("a.t", "x N", 1)}


def test_render_parse_round_trip():
    entries = {Entry("b.t", "two", 2), Entry("a.t", "ten", 10), Entry("a.t", "nine", 9)}
    text = ratchet.render(entries)
    assert text.startswith("#")
    assert text.splitlines()[-3:] == ["a.t\t9\tnine", "a.t\t10\tten", "b.t\t2\ttwo"]
    assert ratchet.parse(text) == entries


def test_check_names_lost_assertions_of_files_that_ran():
    listed = {Entry("a.t", "x", 1), Entry("a.t", "y", 2), Entry("b.t", "z", 1)}
    passes = ratchet.passing([result("a.t", "1..2\nok 1 - x\nnot ok 2 - y\n")])
    assert ratchet.check(listed, passes, ["a.t"]) == [Entry("a.t", "y", 2)]
    # b.t did not run: its entries are not judged
    assert ratchet.check(listed, passes | {Entry("a.t", "y", 2)}, ["a.t"]) == []
    # a file that no longer starts loses all its entries
    assert ratchet.check(listed, set(), ["a.t", "b.t"]) == sorted(listed)


def test_update_adds_and_refuses_to_drop():
    listed = {Entry("a.t", "x", 1), Entry("a.t", "y", 2)}
    passes = {Entry("a.t", "x", 1), Entry("a.t", "new", 3)}
    refused = ratchet.update(listed, passes, ["a.t"])
    assert refused.refused and refused.dropped == [Entry("a.t", "y", 2)]
    assert refused.entries == listed
    allowed = ratchet.update(listed, passes, ["a.t"], allow_drop=True)
    assert not allowed.refused
    assert allowed.entries == {Entry("a.t", "x", 1), Entry("a.t", "new", 3)}
    grown = ratchet.update(listed, listed | passes, ["a.t"])
    assert not grown.refused and grown.added == [Entry("a.t", "new", 3)]
    assert grown.entries == listed | passes


def test_update_keeps_entries_of_files_not_run():
    listed = {Entry("b.t", "z", 1)}
    out = ratchet.update(listed, {Entry("a.t", "x", 1)}, ["a.t"])
    assert out.entries == {Entry("b.t", "z", 1), Entry("a.t", "x", 1)}


def test_key_is_file_and_name_so_a_file_that_starts_keeps_its_log_checks():
    before = result("a.t", "1..2\nok 1 - no alerts\nok 2 - no sanitizer errors\n")
    after = result("a.t", "1..4\nok 1 - x\nnot ok 2 - y\nok 3 - no alerts\n"
                          "ok 4 - no sanitizer errors\n")
    listed = ratchet.passing([before])
    assert ratchet.check(listed, ratchet.passing([after]), ["a.t"]) == []
    assert ratchet.parse(ratchet.render(ratchet.passing([after]))) == ratchet.passing([after])


def test_repeated_names_get_an_occurrence_index():
    r = result("a.t", "1..3\nnot ok 1 - same\nok 2 - same\nok 3 - same\n")
    assert {e.name for e in ratchet.passing([r])} == {"same [2]", "same [3]"}
