"""Whether an upstream response may be cached, and until when (ngx_http_upstream.c:
ngx_http_upstream_process_cache_control, _process_expires, _process_accel_expires,
_process_set_cookie, _process_vary; ngx_http_upstream_send_response's proxy_cache_valid).

`valid_until(conf, status, headers, now)` -> the absolute expiry time (seconds), or 0 when the
response must not be stored. nginx's rules, headers named in proxy_ignore_headers skipped:
  X-Accel-Expires   0: not cached; `@T`: until T; N: now + N (wins over the others)
  Cache-Control     no-cache, no-store, private, max-age=0, s-maxage=0: not cached;
                    s-maxage=N, else max-age=N: now + N
  Expires           a date in the past (or unparsable): not cached; else that date
  Set-Cookie        not cached
  Vary              `*`: not cached (other values make the entry a variant: store.py)
  otherwise         the first proxy_cache_valid for the status (or `any`), else not cached
"""
from __future__ import annotations

from email.utils import parsedate_to_datetime


def http_time(value: bytes) -> int | None:
    try:
        return int(parsedate_to_datetime(value.decode("latin-1")).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _directive_number(cc: str, name: str) -> int | None:
    i = cc.find(name + "=")
    if i < 0 or (i > 0 and cc[i - 1] not in " ,\t"):
        return None
    j = i + len(name) + 1
    k = j
    while k < len(cc) and cc[k].isdigit():
        k += 1
    if k == j:
        return -1
    return int(cc[j:k])


def valid_until(conf, status: int, headers, now: float) -> int:
    valid = header_valid(conf, headers, now)
    if valid is None:
        return status_valid(conf, status, now)
    return valid


def status_valid(conf, status: int, now: float) -> int:
    """proxy_cache_valid's time for the status (the first that lists it, or `any`)."""
    for codes, seconds in conf.valid:
        if codes is None or status in codes:
            return int(now) + seconds if seconds else 0
    return 0


def header_valid(conf, headers, now: float) -> int | None:
    """The expiry the headers give: a time, 0 (not cacheable), None (they say nothing)."""
    ignore = conf.ignore
    valid = 0
    xae = cc = expires = vary = None
    for name, value in headers:
        n = name.lower()
        if n == b"set-cookie":
            if b"set-cookie" not in ignore and "set-cookie" not in ignore:
                return 0
        elif n == b"x-accel-expires" and xae is None:
            xae = value
        elif n == b"cache-control":
            cc = value if cc is None else cc + b"," + value
        elif n == b"expires" and expires is None:
            expires = value
        elif n == b"vary":
            vary = value if vary is None else vary + b"," + value
    if vary is not None and "vary" not in ignore and b"*" in vary:
        return 0
    if xae is not None and "x-accel-expires" not in ignore:
        text = xae.decode("latin-1").strip()
        if text.startswith("@"):
            try:
                return int(text[1:])
            except ValueError:
                return 0
        try:
            n = int(text)
        except ValueError:
            n = -1
        if n == 0:
            return 0
        if n > 0:
            valid = int(now) + n
    if not valid and cc is not None and "cache-control" not in ignore:
        text = cc.decode("latin-1").lower()
        for word in ("no-cache", "no-store", "private"):
            if word in text:
                return 0
        n = _directive_number(text, "s-maxage")
        if n is None:
            n = _directive_number(text, "max-age")
        if n is not None:
            if n <= 0:
                return 0
            valid = int(now) + n
    if not valid and expires is not None and "expires" not in ignore:
        t = http_time(expires)
        if t is None or t <= now:
            return 0
        valid = t
    return valid or None


def vary_names(headers, conf) -> tuple:
    """The request headers a response varies on (lower case bytes), () without Vary."""
    if "vary" in conf.ignore:
        return ()
    names = []
    for name, value in headers:
        if name.lower() == b"vary":
            names.extend(v.strip().lower() for v in value.split(b",") if v.strip())
    return tuple(sorted(set(names)))


def vary_values(hdr: dict, names: tuple) -> list:
    return [hdr.get(n, b"").decode("latin-1") for n in names]


def _uncacheable_line(conf, lname: bytes, value: bytes, now: float) -> bool:
    """One header line that makes nginx clear u->cacheable as it is processed."""
    ignore = conf.ignore
    if lname == b"set-cookie":
        return "set-cookie" not in ignore
    if lname == b"cache-control" and "cache-control" not in ignore:
        text = value.decode("latin-1").lower()
        if "no-cache" in text or "no-store" in text or "private" in text:
            return True
        n = _directive_number(text, "s-maxage")
        if n is None:
            n = _directive_number(text, "max-age")
        return n is not None and n <= 0
    if lname == b"x-accel-expires" and "x-accel-expires" not in ignore:
        return value.strip() == b"0"
    if lname == b"vary" and "vary" not in ignore:
        return b"*" in value
    return False


def split_cacheable(conf, headers, now: float):
    """nginx copies Last-Modified and Accept-Ranges differently while a response is still
    cacheable (headers are processed in order): Last-Modified stays among the headers instead of
    its own slot, and Accept-Ranges is not copied but added by the range filter at the end.
    Returns (headers with those Accept-Ranges removed, accept_ranges, list_last_modified)."""
    cacheable = True
    out = []
    accept_ranges = False
    listed_lm = False
    for name, value in headers:
        lname = name.lower()
        if cacheable and _uncacheable_line(conf, lname, value, now):
            cacheable = False
        if cacheable and lname == b"accept-ranges":
            accept_ranges = True
            continue
        if cacheable and lname == b"last-modified":
            listed_lm = True
        out.append((name, value))
    return out, accept_ranges, listed_lm


def extensions(conf, headers) -> tuple[int, int]:
    """Cache-Control's stale-while-revalidate=N and stale-if-error=N (seconds past expiry an
    entry may still be served while it is updated, or when the upstream fails)."""
    if "cache-control" in conf.ignore:
        return 0, 0
    swr = sie = 0
    for name, value in headers:
        if name.lower() == b"cache-control":
            text = value.decode("latin-1").lower()
            n = _directive_number(text, "stale-while-revalidate")
            if n is not None and n > 0:
                swr = n
            n = _directive_number(text, "stale-if-error")
            if n is not None and n > 0:
                sie = n
    return swr, sie
