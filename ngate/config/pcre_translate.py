"""PCRE pattern syntax rewritten for Python's engines: the translator behind config/regex.py.

The pattern comes as regex.py's as_bytes_text() gives it (its UTF-8 bytes as latin-1 characters).
`translate()` walks the pattern once (a small tokenizer with a character-class state) and rewrites
what Python's `re` spells differently or lacks:
- `\\Q...\\E` literals (also inside classes), `(?#...)` comments, `x`-mode whitespace and comments;
- named groups `(?<n>..)`, `(?'n'..)`, `(?P<n>..)` and their references `\\k<n>`, `\\k'n'`, `\\k{n}`,
  `\\g{n}`, `\\gN`, `\\g{-N}`, conditions `(?(<n>)..)`, `(?('n')..)`;
- inline options `(?i)`, `(?-i)`, `(?s)`, `(?m)`, `(?x)`, `(?^)` anywhere: PCRE applies them to the
  rest of the enclosing group, alternatives included; they become scoped groups `(?i:...)`
  closed at each `|` (and reopened after it) and at the group's end;
- escapes `\\z`, `\\Z`, `\\h`, `\\H`, `\\v`, `\\V`, `\\R`, `\\N`, `\\e`, `\\cX`, `\\x{..}`, `\\o{..}`,
  `\\xH`, `\\C`; POSIX classes `[[:alpha:]]`; a `{` that is no quantifier (`x{,3}` is literal in
  PCRE2 10.42) and a `[` inside a class are literals.
Possessive quantifiers and atomic groups pass through (Python 3.11's `re` has them). What only the
`regex` package expresses (`\\K`, `\\G`, `\\p{..}`, `\\X`, `(?|..)`, recursion and subroutine calls,
backtracking verbs, variable-length lookbehind, duplicate names with `(?J)`) compiles with it.
A construct neither engine has raises Unsupported.
"""
from __future__ import annotations

import re


class Unsupported(Exception):
    """A PCRE construct neither Python engine has."""


_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r"\t\n\x0b\f\r ", "blank": r"\t ", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "word": r"\w", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e", "graph": r"\x21-\x7e",
    "ascii": r"\x00-\x7f",
}
_HSPACE = r"\t \xa0"
_VSPACE = r"\n\x0b\f\r\x85"
_QUANT = re.compile(r"\{(\d+)(,(\d*))?\}")
_NAME = re.compile(r"[A-Za-z_]\w*")
_REGEX_ONLY_GROUP = re.compile(r"\((?:\?(?:\||R\)|[+-]?\d+\)|&|P>)|\*)")
_FLAG_LETTERS = set("imsxnUJ")


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.needs_regex = False
        self.ncaps = 0
        # one frame per open group: [flag scopes opened in it, their texts, x mode on entry]
        self.frames: list[list] = [[0, [], False]]
        self.xmode = False

    # ------------------------------------------------------------------ driver
    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if self.xmode and c in " \t\n\r\f\x0b":
                self.i += 1
            elif self.xmode and c == "#":
                nl = p.find("\n", self.i)
                self.i = len(p) if nl < 0 else nl + 1
            elif c == "\\":
                self.escape()
            elif c == "[":
                self.char_class()
            elif c == "(":
                self.group()
            elif c == ")":
                self.close_group()
            elif c == "|":
                self.alternative()
            elif c == "{":
                m = _QUANT.match(p, self.i)
                if m and self.out:
                    self.out.append(m.group(0))
                    self.i = m.end()
                else:
                    self.out.append(r"\{")
                    self.i += 1
            else:
                self.out.append(c)
                self.i += 1
        self.out.append(")" * self.frames[-1][0])
        return "".join(self.out)

    # ----------------------------------------------------------------- escapes
    def escape(self) -> None:
        p, i = self.p, self.i
        if i + 1 >= len(p):
            raise Unsupported("\\ at end of pattern")
        c = p[i + 1]
        self.i = i + 2
        if c == "Q":
            end = p.find("\\E", self.i)
            lit = p[self.i:] if end < 0 else p[self.i:end]
            self.i = len(p) if end < 0 else end + 2
            self.out.append(re.escape(lit))
            return
        if c == "E":
            return
        simple = {"z": r"\Z", "Z": r"(?=\n?\Z)", "h": f"[{_HSPACE}]", "H": f"[^{_HSPACE}]",
                  "v": f"[{_VSPACE}]", "V": f"[^{_VSPACE}]", "R": f"(?>\\r\\n|[{_VSPACE}])",
                  "e": r"\x1b", "C": r"[\x00-\xff]"}
        if c in simple:
            self.out.append(simple[c])
            return
        if c == "N" and not p.startswith("{", self.i):
            self.out.append(r"[^\n]")
            return
        if c in "KGXpP":
            self.needs_regex = True
            self.out.append("\\" + c)
            if c in "pP" and p.startswith("{", self.i):
                end = p.find("}", self.i)
                self.out.append(p[self.i:end + 1])
                self.i = end + 1
            return
        if c in "kg":
            self.out.append(self.reference(c))
            return
        lit = self.char_escape(c)
        self.out.append(lit if lit is not None else "\\" + c)

    def char_escape(self, c: str) -> str | None:
        """A character given by an escape (\\cX, \\x.., \\o{..}) as a Python escape; None else."""
        p = self.p
        if c == "c":
            if self.i >= len(p):
                raise Unsupported("\\c at end of pattern")
            ch = p[self.i]
            self.i += 1
            return "\\x%02x" % (ord(ch.upper()) ^ 0x40)
        if c == "x":
            if p.startswith("{", self.i):
                end = p.find("}", self.i)
                digits = p[self.i + 1:end] if end > 0 else ""
                if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise Unsupported("bad \\x{...}")
                self.i = end + 1
                return self.code_point(int(digits, 16))
            m = re.compile(r"[0-9A-Fa-f]{0,2}").match(p, self.i)
            self.i = m.end()
            return self.code_point(int(m.group(0) or "0", 16))
        if c == "o" and p.startswith("{", self.i):
            end = p.find("}", self.i)
            if end < 0:
                raise Unsupported("bad \\o{...}")
            value = int(p[self.i + 1:end], 8)
            self.i = end + 1
            return self.code_point(value)
        return None

    @staticmethod
    def code_point(value: int) -> str:
        if value > 0xFF:
            raise Unsupported("character code point value in \\x{} or \\o{} is too large")
        return "\\x%02x" % value

    def reference(self, c: str) -> str:
        """\\k<n> \\k'n' \\k{n} \\g{n} \\gN \\g{-N} back-references; \\g<n> is a subroutine call."""
        p, i = self.p, self.i
        if i < len(p) and p[i] in "<'{":
            close = {"<": ">", "'": "'", "{": "}"}[p[i]]
            end = p.find(close, i + 1)
            if end < 0:
                raise Unsupported(f"\\{c} without its closing {close}")
            ref = p[i + 1:end]
            self.i = end + 1
            if c == "g" and p[i] in "<'":
                self.needs_regex = True
                return f"(?&{ref})" if _NAME.fullmatch(ref) else f"(?{ref})"
        else:
            m = re.compile(r"[+-]?\d+").match(p, i)
            if not m or c == "k":
                raise Unsupported(f"\\{c} not followed by a name or number")
            ref = m.group(0)
            self.i = m.end()
        if _NAME.fullmatch(ref):
            return f"(?P={ref})"
        n = int(ref)
        if n < 0:
            n = self.ncaps + 1 + n
        if n <= 0:
            raise Unsupported("a reference to a non-existent subpattern")
        return f"(?:\\{n})" if n < 100 else "\\%d" % n

    # ------------------------------------------------------------------ groups
    def group(self) -> None:
        p, i = self.p, self.i
        if _REGEX_ONLY_GROUP.match(p, i):
            self.needs_regex = True
        if p.startswith("(?#", i):
            end = p.find(")", i)
            if end < 0:
                raise Unsupported("missing ) after (?# comment")
            self.i = end + 1
            return
        opened = "("
        if p.startswith("(?", i):
            m = re.compile(r"\(\?(?:P?<(\w+)>|'(\w+)')").match(p, i)
            if m and not p.startswith(("(?<=", "(?<!"), i):
                name = m.group(1) or m.group(2)
                opened = f"(?P<{name}>"
                self.ncaps += 1
                self.i = m.end()
                self.push(opened)
                return
            m = re.compile(r"\(\?\((?:<(\w+)>|'(\w+)')\)").match(p, i)
            if m:
                self.i = m.end()
                self.push(f"(?({m.group(1) or m.group(2)})")
                return
            if p.startswith("(?(", i) and not re.compile(r"\(\?\((?:\d+|\w+)\)").match(p, i):
                self.needs_regex = True
            m = re.compile(r"\(\?(\^)?([imsxnUJ]*)(?:-([imsxnUJ]*))?([:)])").match(p, i)
            if m and (m.group(1) or m.group(2) or m.group(3) is not None):
                self.i = m.end()
                self.flags(m.group(1) is not None, m.group(2), m.group(3) or "", m.group(4))
                return
            if p.startswith("(?P=", i):
                end = p.find(")", i)
                self.i = end + 1 if end > 0 else len(p)
                self.out.append(p[i:self.i])
                return
        else:
            self.ncaps += not p.startswith("(*", i)
        # plain (, (?:, (?=, (?!, (?<=, (?<!, (?>, (?|, (?(1), verbs: copied up to the group's body
        m = re.compile(r"\((?:\?(?:<[=!]|[:=!>|]|\(\w+\)|\(R\)|\(R\d+\)|\(&\w+\)|P>\w+\)|&\w+\)"
                       r"|[+-]?\d+\)|R\))|\*[A-Z_]*(?::[^)]*)?\))?").match(p, i)
        opened = m.group(0)
        self.i = m.end()
        if opened.endswith(")") and opened != "(" and not opened.startswith("(?("):
            self.out.append(opened)         # a complete item: (?R) (?1) (?&n) (*VERB)
            if opened.startswith("(?") and opened[2:-1].lstrip("+-").isdigit():
                self.out[-1] = self.relative_call(opened)
            return
        self.push(opened)

    def relative_call(self, item: str) -> str:
        body = item[2:-1]
        if body[0] in "+-":
            n = self.ncaps + int(body) + (1 if body[0] == "-" else 0)
            return f"(?{n})"
        return item

    def push(self, opened: str) -> None:
        self.out.append(opened)
        self.frames.append([0, [], self.xmode])

    def flags(self, caret: bool, on: str, off: str, end: str) -> None:
        for f in on + off:
            if f not in _FLAG_LETTERS:
                raise Unsupported(f"unrecognized option (?{on}-{off})")
        if "U" in on or "n" in on:
            raise Unsupported(f"option (?{'U' if 'U' in on else 'n'}) (no Python equivalent)")
        if "J" in on:
            self.needs_regex = True
        x = (False if caret else self.xmode)
        x = True if "x" in on else (False if "x" in off else x)
        on = "".join(sorted(set(on) & set("ims")))
        off = "".join(sorted((set("ims") if caret else set(off) & set("ims")) - set(on)))
        scope = "(?" + on + ("-" + off if off else "") + ":" if (on or off) else "(?:"
        if end == ":":
            self.push(scope)
            self.xmode = x
            return
        self.xmode = x
        if scope == "(?:":
            return
        frame = self.frames[-1]
        frame[0] += 1
        frame[1].append(scope)
        self.out.append(scope)

    def close_group(self) -> None:
        if len(self.frames) == 1:
            raise Unsupported("unmatched closing parenthesis")
        frame = self.frames.pop()
        self.out.append(")" * frame[0] + ")")
        self.xmode = frame[2]
        self.i += 1

    def alternative(self) -> None:
        frame = self.frames[-1]
        self.out.append(")" * frame[0] + "|" + "".join(frame[1]))
        self.i += 1

    # ------------------------------------------------------------ char classes
    def char_class(self) -> None:
        p = self.p
        i = self.i + 1
        parts = ["["]
        if i < len(p) and p[i] == "^":
            parts.append("^")
            i += 1
        first = True
        while True:
            if i >= len(p):
                raise Unsupported("missing terminating ] for character class")
            c = p[i]
            if c == "]" and not first:
                i += 1
                break
            first = False
            if c == "[":
                m = re.compile(r"\[:(\^?)([a-z]+):\]").match(p, i)
                if m:
                    if m.group(2) not in _POSIX:
                        raise Unsupported(f"unknown POSIX class name {m.group(2)}")
                    if m.group(1):
                        self.needs_regex = True
                        parts.append(m.group(0))
                    else:
                        parts.append(_POSIX[m.group(2)])
                    i = m.end()
                    continue
                parts.append(r"\[")
                i += 1
                continue
            if c == "\\":
                i = self.class_escape(i, parts)
                continue
            if c in "&~|-" and p.startswith(c * 2, i):
                parts.append(c + "\\" + c)
                i += 2
                continue
            parts.append(c)
            i += 1
        parts.append("]")
        self.out.append("".join(parts))
        self.i = i

    def class_escape(self, i: int, parts: list) -> int:
        p = self.p
        if i + 1 >= len(p):
            raise Unsupported("\\ at end of pattern")
        c = p[i + 1]
        if c == "Q":
            end = p.find("\\E", i + 2)
            lit = p[i + 2:] if end < 0 else p[i + 2:end]
            parts.extend(re.escape(ch) if ch in "\\]^-[" else ch for ch in lit)
            return len(p) if end < 0 else end + 2
        if c == "E":
            return i + 2
        if c in "hv":
            parts.append(_HSPACE if c == "h" else _VSPACE)
            return i + 2
        if c == "e":
            parts.append(r"\x1b")
            return i + 2
        if c in "HVRNXKGC":
            raise Unsupported(f"\\{c} in a character class")
        if c in "pP":
            self.needs_regex = True
        self.i = i + 2
        lit = self.char_escape(c)
        if lit is not None:
            parts.append(lit)
            return self.i
        parts.append("\\" + c)
        return i + 2


def translate(pattern: str) -> tuple[str, bool]:
    """The Python spelling of a PCRE pattern, and whether it needs the `regex` package."""
    t = _Translator(pattern)
    out = t.run()
    return out, t.needs_regex
