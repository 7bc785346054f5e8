"""nginx's own test suite (nginx-tests) run against ngate: the runner, its table and the ratchet.

    scripts/conformance [files...] [-j N] [--tests DIR] [--check | --update [--allow-drop]]

tap.py parses one file's TAP output, run.py runs files (one process group each, with a time
limit), reference.py reads nginx's score file, table.py prints the comparison, ratchet.py keeps
the list of assertions that must keep passing, expected.py the failures ngate keeps on purpose
(with the reason), cli.py ties them together.
"""
