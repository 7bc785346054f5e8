"""PCRE as nginx compiles it, translated for Python (ngate/config/regex.py), checked against real
PCRE2 (libpcre2-8, the library nginx links) on the same pattern and subject."""
from __future__ import annotations

import pytest

from ngate.config.regex import compile_regex, translate
from ngate.errors import ConfigError
from tests.harness.pcre2 import pcre_search

# (pattern, subjects): every subject is matched by PCRE and by ngate's translation
CASES = [
    (r"^/\Q.a+b\E$", ["/.a+b", "/xaab", "/.a+b/"]),
    (r"^/\Q(x\E/", ["/(x/", "/x/"]),
    (r"\Q.*", ["a.*", "abc"]),                                  # \Q to the end
    (r"[\Q]^\E]+", ["a]^b", "abc"]),                            # \Q..\E in a class
    (r"a(?i)b|c", ["aB", "AB", "C", "c", "xc"]),                # (?i) reaches later branches
    (r"(a(?i)b|c)d", ["aBd", "CD", "Cd"]),
    (r"(?i:a(?-i)b)c", ["Abc", "ABc", "abC"]),
    (r"^(?i)/ADMIN", ["/admin", "/Admin/x"]),
    (r"(?s)a.b", ["a\nb"]),
    (r"(?m)^b", ["a\nb"]),
    (r"(?x) ^ /a  b  # comment\n c", ["/abc", "/a b c"]),
    (r"(?x)[ ]a", [" a", "a"]),                                 # x mode keeps class spaces
    (r"^/(?<name>[a-z]+)/(?'id'\d+)/(?P<rest>.*)$", ["/user/42/x/y", "/User/42/"]),
    (r"(?<w>a|b)\k<w>\k'w'\k{w}\g{w}", ["aaaaa", "abbbb", "bbbbb"]),
    (r"(a)(b)\g1\g{2}\g{-1}", ["abab b", "ababb"]),
    (r"(?<q>['\"]).*?(?P=q)", ["x'a'b", "\"q\""]),
    (r"^(?:a++)b", ["aaab", "aaa"]),                            # possessive
    (r"^(?>a+)ab", ["aaab"]),                                   # atomic
    (r"^(?>\d+)\.\d*+$", ["12.5", "12."]),
    (r"^[[:alpha:]]+[[:digit:]]*[[:space:]]?$", ["abc12 ", "ab c"]),
    (r"^[[:alnum:][:punct:]]+$", ["a1!~", "a b"]),
    (r"^[[:^digit:]]+$", ["abc", "a1"]),
    (r"^\w+$", ["abc_1", "\xe9t\xe9"]),                         # \w is ASCII only (no UTF)
    (r"^\d+$", ["123"]),
    (r"a\h+b\v?c", ["a \tbc", "a\xa0b\nc"]),
    (r"a\Hb\Vc", ["axbyc", "a b c"]),
    (r"^a\R?b$", ["ab", "a\r\nb", "a\nb"]),
    (r"a\Nb", ["axb", "a\nb"]),
    (r"\x41\x{42}\x4\o{103}\e?\cA?", ["ABC", "AB\x04C"]),
    (r"a{,3}", ["a{,3}", "aaa"]),                               # literal in PCRE2 10.42
    (r"a{2}b{1,}c{1,2}", ["aabcc", "abc"]),
    (r"x{", ["x{"]),
    (r"^/a$", ["/a", "/a\n", "/a\n\n"]),                        # $ before a final newline
    (r"^/a\z", ["/a", "/a\n"]),
    (r"^/a\Z", ["/a", "/a\n", "/a\nb"]),
    (r"(?<=a|bc)x", ["ax", "bcx", "cx"]),                       # lookbehind of two lengths
    (r"(?(?=a)ab|cd)", ["ab", "cd", "ad"]),
    (r"(a)?(?(1)b|c)", ["ab", "c", "b"]),
    (r"(?<n>a)?(?(<n>)b|c)", ["ab", "c"]),
    (r"foo\Kbar", ["foobar"]),
    (r"^\p{L}+$", ["abc", "a1"]),
    (r"^(\((?:[^()]|(?1))*\))$", ["(a(b)c)", "(a(b c)"]),       # recursion
    (r"^(?|(a)|(b))\1$", ["aa", "bb", "ab"]),                   # branch reset
    (r"a(?#comment)b", ["ab"]),
    (r"\.(jpg|png)$", ["/x.png", "/x.PNG"]),
    ("^/caf\u00e9/", ["/caf\u00e9/".encode().decode("latin-1")]),  # UTF-8 bytes, byte by byte
    (r"a\E b", ["a b"]),
    (r"[a\-z]+", ["-", "b"]),
    (r"[]a]+", ["]a"]),
    (r"[^]a]", ["]b"]),
    (r"[a[b]+", ["[ab"]),
    (r"[a&&b]", ["&"]),
]


def _pcre(pattern: str, subject: str, caseless: bool):
    got = pcre_search(pattern.encode(), subject.encode("latin-1"), caseless)
    return None if got is None else tuple(g.decode("latin-1") if g is not None else None
                                          for g in got)


def _ngate(pattern: str, subject: str, caseless: bool):
    mo = compile_regex(pattern, "test:1", caseless).search(subject)
    if mo is None:
        return None
    groups = (mo.group(0),) + mo.groups()
    while groups and groups[-1] is None:    # PCRE reports up to the last group that matched
        groups = groups[:-1]
    return groups


@pytest.mark.parametrize("caseless", [False, True], ids=["~", "~*"])
@pytest.mark.parametrize("pattern,subjects", CASES, ids=[c[0] for c in CASES])
def test_matches_like_pcre(pattern, subjects, caseless):
    for subject in subjects:
        assert _ngate(pattern, subject, caseless) == _pcre(pattern, subject, caseless), subject


def test_caseless_is_ascii_only():
    rx = compile_regex("^\u00e9$".encode().decode("latin-1"), "t:1", caseless=True)
    assert rx.search("\u00c9") is None


@pytest.mark.parametrize("pattern,needs_regex", [
    (r"\Qa\E", False), (r"(?<n>a)", False), (r"a(?i)b", False), (r"a++", False),
    (r"(?>a)", False), (r"a\Kb", True), (r"(?R)", True), (r"\p{L}", True), (r"(?|(a)|(b))", True),
])
def test_engine_choice(pattern, needs_regex):
    """Python's re unless only the regex package expresses the pattern (it is slower)."""
    assert translate(pattern)[1] is needs_regex


@pytest.mark.parametrize("pattern,message", [
    ("^/(foo", 'pcre2_compile() failed: missing closing parenthesis in "^/(foo"'),
    ("a)", 'pcre2_compile() failed: unmatched closing parenthesis in "a)" at ")"'),
    ("[[:foo:]]", 'pcre2_compile() failed: unknown POSIX class name in "[[:foo:]]" at "foo:]]"'),
    ("*a", 'pcre2_compile() failed: quantifier does not follow a repeatable item in "*a" at "*a"'),
    ("(?U)a+", 'regex "(?U)a+" cannot be used: option (?U) (no Python equivalent)'),
    ("(*UTF)a", 'regex "(*UTF)a" uses PCRE syntax ngate does not support: unknown verb at position 2'),
])
def test_refused_with_nginx_words(pattern, message):
    with pytest.raises(ConfigError) as e:
        compile_regex(pattern, "nginx.conf:7")
    assert str(e.value) == f"{message} in nginx.conf:7"
