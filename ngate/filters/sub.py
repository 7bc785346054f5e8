"""sub_filter (ngx_http_sub_filter_module): replace strings in a response body.

Matching is nginx's: case-insensitive (ASCII), the leftmost position first and, at one position,
the first pattern in config order; matches do not overlap; with sub_filter_once (the default)
each pattern is replaced once, and a used pattern no longer competes. Patterns and replacements
may hold variables (a pattern empty after rendering is dropped), rendered when the response
starts.

Streaming: a position is decided only once max_len bytes from it are known, so at most
max_len - 1 bytes are held between reads (matches across read boundaries are found); the held
bytes go out at the end of the body.

The header filter applies to types in sub_filter_types (text/html always; `*` any) with a body
that is not known to be empty; it drops Content-Length and, unless sub_filter_last_modified on,
Last-Modified and ETag (with it on, ETag becomes weak).
"""
from __future__ import annotations

import re

from ngate.filters import HeadersOut, content_type_in, filter_types


class SubFilter:
    """The header filter; `pairs` are (match Template or bytes, replacement Template)."""
    __slots__ = ("pairs", "types", "once", "last_modified")

    def __init__(self, pairs: tuple, types: frozenset, once: bool, last_modified: bool) -> None:
        self.pairs = pairs
        self.types = filter_types(types)
        self.once = once
        self.last_modified = last_modified

    def header(self, ctx, out: HeadersOut):
        if out.content_length == 0:
            return None
        if not content_type_in(self.types, out.content_type):
            return None
        matches = []
        for match, value in self.pairs:
            m = match if match.__class__ is bytes else \
                match.render(ctx).encode("latin-1", "replace").lower()
            if m:
                matches.append((m, value))
        if not matches:
            return None
        if ctx.main is None:
            out.content_length = None
            if not self.last_modified:
                out.last_modified = None
                out.remove(b"last-modified")
                out.remove(b"etag")
            else:
                out.weak_etag()
        return Substitute(ctx, matches, self.once)


class Substitute:
    """The body filter of one response."""
    __slots__ = ("ctx", "matches", "values", "once", "used", "rx", "max_len", "held")

    def __init__(self, ctx, matches: list, once: bool) -> None:
        self.ctx = ctx
        self.matches = matches
        self.values = [None] * len(matches)
        self.once = once
        self.used = set()
        self.max_len = max(len(m) for m, _ in matches)
        self.held = b""
        self.rx = self._compile()

    def _compile(self):
        alts = [b"(" + re.escape(m) + b")" if i not in self.used else b"((?!))"
                for i, (m, _) in enumerate(self.matches)]
        return re.compile(b"|".join(alts), re.IGNORECASE)

    def _value(self, i: int) -> bytes:
        v = self.values[i]
        if v is None:
            v = self.values[i] = self.matches[i][1].render(self.ctx).encode("latin-1", "replace")
        return v

    def _scan(self, buf: bytes, limit: int) -> bytes:
        """Replace in buf at positions < limit; the rest (from the first undecided position)
        is held."""
        out = []
        pos = 0
        rx = self.rx
        while rx is not None:
            m = rx.search(buf, pos)
            if m is None or m.start() >= limit:
                break
            i = m.lastindex - 1
            out.append(buf[pos:m.start()])
            out.append(self._value(i))
            pos = m.end()
            if self.once:
                self.used.add(i)
                self.rx = rx = None if len(self.used) == len(self.matches) else self._compile()
        if rx is None:          # every pattern used: the rest passes as it is
            out.append(buf[pos:])
            self.held = b""
            return b"".join(out)
        cut = max(pos, limit)
        out.append(buf[pos:cut])
        self.held = buf[cut:]
        return b"".join(out)

    def data(self, data: bytes) -> bytes:
        buf = self.held + data if self.held else bytes(data)
        return self._scan(buf, len(buf) - self.max_len + 1)

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        buf = self.held
        self.held = b""
        return self._scan(buf, len(buf)) + self.held if buf else b""
