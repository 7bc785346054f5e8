"""The runner's table and the nginx reference it compares with (conformance/table.py)."""
from conformance import reference, table, tap
from conformance.result import FileResult

REF = """\
file                                        plan  pass  fail  todo  skip  status
a.t                                           10     9     0     1     0  ok
b.t                                            5     5     0     0     0  ok
gzip_flush.t                                   0     0     0     0     0  SKIP_ALL: no perl available
"""


def test_reference_parse():
    scores = reference.parse(REF)
    assert list(scores) == ["a.t", "b.t", "gzip_flush.t"]
    assert scores["a.t"].plan == 10 and scores["a.t"].passed == 9 and scores["a.t"].todo == 1
    assert scores["gzip_flush.t"].status == "SKIP_ALL: no perl available"


def test_table_rows_and_total():
    scores = reference.parse(REF)
    a = FileResult("a.t", tap.parse("1..10\n" + "".join(f"ok {i} - t\n" for i in range(1, 11))))
    b = FileResult("b.t", tap.parse("1..0 # SKIP no ssi available\n"),
                   cause="")
    c = FileResult("c.t", tap.parse("1..4\nok 1 - x\n"), exit_code=255,
                   cause='[emerg] unknown directive "geo" in nginx.conf:12')
    text = table.render([a, b, c], scores)
    lines = text.splitlines()
    assert lines[0].split() == list(table.HEADER)
    assert lines[1].split() == ["a.t", "10", "10", "0", "0", "0", "0", "9", "ok"]
    assert lines[2].split()[:8] == ["b.t", "0", "0", "0", "0", "0", "0", "5"]
    assert "SKIP_ALL: no ssi available (-5)" in lines[2]
    assert lines[3].split()[:9] == ["c.t", "4", "1", "3", "0", "0", "0", "-", "FAIL"]
    assert 'unknown directive "geo"' in lines[3]
    assert lines[4].split() == ["TOTAL", "14", "11", "3", "0", "0", "0", "14"]
    assert "ngate passes 11 assertions where nginx 1.22.1 passes 14" in lines[5]
    assert "1 of 2 reference files at least as many as nginx" in lines[5]
