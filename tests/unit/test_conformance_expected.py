"""Expected differences (conformance/expected.py): parsed from the repository's list, shown in
their own column with the reason as a footnote, never counted as passes."""
from pathlib import Path

import pytest

from conformance import expected, reference, table, tap
from conformance.result import FileResult

REPO = Path(__file__).resolve().parents[2]
REF = """\
file      plan  pass  fail  todo  skip  status
name.t       5     5     0     0     0  ok
other.t      3     3     0     0     0  ok
"""
LIST = """\
# comment
name.t\ttokens *\tngate names itself "ngate"

other.t\tport N only\tsome reason
"""

NAME_TAP = ("1..5\nok 1 - plain\nnot ok 2 - tokens on 200\nnot ok 3 - tokens off 404\n"
            "ok 4 - tokens build 200\nnot ok 5 - unrelated\n")


def test_parse_and_format_errors():
    diffs = expected.parse(LIST)
    assert diffs == (expected.Difference("name.t", "tokens *", 'ngate names itself "ngate"'),
                     expected.Difference("other.t", "port N only", "some reason"))
    with pytest.raises(expected.FormatError, match=r":1: expected file<TAB>"):
        expected.parse("name.t tokens * reason\n", "x")
    with pytest.raises(expected.FormatError, match=r'"name" is not a test file'):
        expected.parse("name\ttokens *\treason\n")
    with pytest.raises(expected.FormatError):
        expected.parse("name.t\t\treason\n")


def test_only_failures_are_classified_and_names_are_normalised():
    diffs = expected.parse(LIST)
    r = FileResult("name.t", tap.parse(NAME_TAP))
    got = [(a.number, d.reason) for a, d in expected.classify(r, diffs)]
    assert got == [(2, 'ngate names itself "ngate"'), (3, 'ngate names itself "ngate"')]
    # a pass that matches stays a pass; the digits of a name are normalised before matching
    o = FileResult("other.t", tap.parse("1..2\nnot ok 1 - port 8080 only\nok 2 - port 1 only\n"))
    assert [a.number for a, _ in expected.classify(o, diffs)] == [1]
    # ... and the name as it is matches too ("http2" is not written "httpN")
    h2 = expected.parse("h.t\thttp2 tokens *\treason\n")
    r2 = FileResult("h.t", tap.parse("1..1\nnot ok 1 - http2 tokens on 200\n"))
    assert len(expected.classify(r2, h2)) == 1
    # TODO and skipped assertions are not failures
    t = FileResult("name.t", tap.parse("1..1\nnot ok 1 - tokens x # TODO later\n"))
    assert expected.classify(t, diffs) == []


def test_table_column_footnote_and_never_a_pass():
    diffs = expected.parse(LIST)
    r = FileResult("name.t", tap.parse(NAME_TAP))
    text = table.render([r], reference.parse(REF), diffs)
    lines = text.splitlines()
    assert lines[0].split() == list(table.HEADER)
    assert lines[1].split()[:8] == ["name.t", "5", "2", "1", "2", "0", "0", "5"]
    assert "FAIL (2 expected [1]) (-3)" in lines[1]
    assert lines[2].split() == ["TOTAL", "5", "2", "1", "2", "0", "0", "5"]
    assert "ngate passes 2 assertions where nginx 1.22.1 passes 5" in text
    assert '[1] name.t: ngate names itself "ngate"' in text
    assert table.totals([r], reference.parse(REF), diffs)["pass"] == 2


def test_file_whose_only_failures_are_expected():
    diffs = expected.parse(LIST)
    r = FileResult("name.t", tap.parse("1..3\nok 1 - plain\nnot ok 2 - tokens on\n"
                                       "not ok 3 - tokens off\n"))
    row = table.rows([r], reference.parse(REF), diffs)[0]
    assert row[2:5] == (1, 0, 2)
    assert row[-1] == "expected [1] (-4)"


def test_stale_entries_are_reported():
    diffs = expected.parse(LIST)
    ok = FileResult("other.t", tap.parse("1..1\nok 1 - port 1 only\n"))
    skipped = FileResult("name.t", tap.parse("1..0 # SKIP no module\n"))
    assert expected.stale([ok, skipped], diffs) == [diffs[1]]
    assert "stale expected difference (explains no failure): other.t\tport N only" in \
        table.render([ok, skipped], reference.parse(REF), diffs)


def test_the_repository_list_parses_and_names_reference_files():
    diffs = expected.load(REPO / "tests" / "conformance" / "expected-differences.txt")
    assert {d.file for d in diffs} >= {"server_tokens.t", "h2_server_tokens.t"}
    readme = (REPO / "README.md").read_text()
    for d in diffs:
        assert d.file in readme, f"{d.file} is an expected difference the README does not list"
