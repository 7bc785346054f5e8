"""Location matching: nginx's ngx_http_core_find_location, over tables built once per config.

One `LocationMatcher` per level (a server's locations, or the locations nested in one location).
The search at a level, as nginx does it:

1. static: an `=` location equal to the URI wins at once (OK). Else the longest prefix location
   is remembered (AGAIN); when no prefix location equals the URI but "<URI>/" names a location
   with proxy_pass/fastcgi_pass, the answer is that location and a 301 (DONE).
2. AGAIN: the remembered location's nested level is searched the same way; its OK or DONE is
   final, its own match (nested prefix or nested regex) replaces the remembered location.
3. unless the remembered prefix of this level is `^~`, this level's regex locations are tried in
   file order; the first that matches wins (its own nested level is searched too) and is final.
4. else the remembered location (or none).

Regex captures are (whole match, $1, ...) of the last regex that matched, a nested one included
(a regex without groups still replaces them: checked against nginx 1.22).
"""
from __future__ import annotations

from ngate.config.model import Location
from ngate.routing.uri import escape_uri

_OK, _DONE, _AGAIN, _DECLINED = 0, 1, 2, 3
_CACHE_MAX = 4096


class LocationMatcher:
    """The match tables of one level. Entries are (location, nested matcher or None)."""
    __slots__ = ("exact", "prefix", "lengths", "regexes", "auto_redirect", "cache")

    def __init__(self, locations: tuple[Location, ...]) -> None:
        self.exact: dict[str, tuple] = {}
        self.prefix: dict[str, tuple] = {}
        self.auto_redirect: dict[str, tuple] = {}
        regexes = []
        for loc in locations:
            mod = loc.modifier
            if mod == "@":
                continue
            entry = (loc, _nested_matcher(loc))
            if mod == "~" or mod == "~*":
                regexes.append(entry)
                continue
            table = self.exact if mod == "=" else self.prefix
            table.setdefault(loc.pattern, entry)
            if loc.auto_redirect:
                self.auto_redirect.setdefault(loc.pattern[:-1], entry)
        self.regexes = tuple(regexes)
        self.lengths = tuple(sorted({len(p) for p in self.prefix}, reverse=True))
        self.cache: dict[str, tuple] = {}

    def longest_prefix(self, uri: str):
        n = len(uri)
        prefix = self.prefix
        for length in self.lengths:
            if length <= n:
                entry = prefix.get(uri[:length])
                if entry is not None:
                    return entry
        return None


def build_matcher(locations: tuple[Location, ...]) -> LocationMatcher:
    """The match tables for `locations` (file order), nested levels included; `@` names skipped."""
    return LocationMatcher(locations)


def _nested_matcher(loc: Location) -> "LocationMatcher | None":
    if not loc.locations:
        return None
    if isinstance(loc.matcher, LocationMatcher):
        return loc.matcher            # built by the config compiler already
    return build_matcher(loc.locations)


def find_location(server, uri: str) -> tuple[Location | None, tuple]:
    """(location, regex captures) for a normalised URI in `server`; (None, ()) when none matches.

    When the answer is an auto-redirect location, `needs_slash_redirect(location, uri)` is true.
    """
    m = server.matcher
    if m is None:
        m = build_matcher(server.locations)
        object.__setattr__(server, "matcher", m)   # frozen model; compile normally sets it
    cache = m.cache
    hit = cache.get(uri)
    if hit is None:
        loc, caps, _ = _find(m, uri)
        hit = (loc, caps)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[uri] = hit
    return hit


def _find(m: LocationMatcher, uri: str) -> tuple:
    """(location, captures, rc) at one level; rc is nginx's OK / DONE / AGAIN / DECLINED."""
    entry = m.exact.get(uri)
    if entry is not None:
        return entry[0], (), _OK
    entry = m.longest_prefix(uri)
    if entry is None or len(entry[0].pattern) != len(uri):
        redirect = m.auto_redirect.get(uri)
        if redirect is not None:
            return redirect[0], (), _DONE
    loc, caps, rc = None, (), _DECLINED
    noregex = False
    if entry is not None:
        loc, nested = entry
        rc = _AGAIN
        noregex = loc.modifier == "^~"
        if nested is not None:
            nloc, ncaps, nrc = _find(nested, uri)
            if nrc == _OK or nrc == _DONE:
                return nloc, ncaps, nrc
            if nloc is not None:
                loc, caps = nloc, ncaps
    if not noregex:
        for rloc, nested in m.regexes:
            mo = rloc.regex.search(uri)
            if mo is None:
                continue
            rcaps = (mo.group(0),) + mo.groups("")
            if nested is not None:
                nloc, ncaps, _ = _find(nested, uri)
                if nloc is not None:
                    return nloc, (ncaps or rcaps), _OK
            return rloc, rcaps, _OK
    return loc, caps, rc


def needs_slash_redirect(location: Location | None, uri: str) -> bool:
    """True when find_location chose `location` only to redirect `uri` to `uri + "/"` (301)."""
    if location is None or not location.auto_redirect:     # (config/model.py Location)
        return False
    p = location.pattern
    return len(p) == len(uri) + 1 and p.startswith(uri)


def slash_redirect_target(location: Location, args: str | None) -> str:
    """The Location of that 301: the location's name, escaped, plus "?args" (relative; the
    response code makes it absolute as for any redirect)."""
    target = escape_uri(location.pattern)
    return f"{target}?{args}" if args else target
