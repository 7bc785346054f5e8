"""Range requests as ngx_http_range_filter_module: parsing, If-Range, 206 and multipart bodies.

`parse(value, size, max_ranges)` returns a list of (start, end) half-open ranges,
NOT_SATISFIABLE (416), or None (ignore the header: send the whole file; also when there are
more than `max_ranges`).
"""
from __future__ import annotations

import itertools

NOT_SATISFIABLE = "416"
_BOUNDARY = itertools.count(1)     # nginx: ngx_next_temp_number(), one counter per worker


def parse(value: str, size: int, max_ranges: int | None = None):
    if value[:6].lower() != "bytes=":
        return None
    p = value[6:]
    ranges = []
    total = 0
    i, n = 0, len(p)
    while True:
        while i < n and p[i] == " ":
            i += 1
        suffix = i < n and p[i] == "-"
        start = 0
        if suffix:
            i += 1
        else:
            j = i
            while i < n and p[i].isdigit():
                i += 1
            if i == j:
                return NOT_SATISFIABLE
            start = int(p[j:i])
            while i < n and p[i] == " ":
                i += 1
            if i >= n or p[i] != "-":
                return NOT_SATISFIABLE
            i += 1
        while i < n and p[i] == " ":
            i += 1
        j = i
        while i < n and p[i].isdigit():
            i += 1
        if i == j:
            if suffix:
                return NOT_SATISFIABLE
            end = size
        else:
            end = int(p[j:i])
            while i < n and p[i] == " ":
                i += 1
            if suffix:
                start = size - end if end < size else 0
                end = size - 1
            end = size if end >= size else end + 1
        if i < n and p[i] != ",":
            return NOT_SATISFIABLE
        if start < end:
            ranges.append((start, end))
            total += end - start
            if max_ranges is not None and len(ranges) > max_ranges:
                return None
        elif start == 0:        # an empty range from 0 (an empty body): the whole response
            return None
        if i >= n:
            break
        i += 1
    if not ranges:
        return NOT_SATISFIABLE
    if total > size:
        return None
    return ranges


def if_range_ok(ctx, etag: str | None, last_modified: str) -> bool:
    """If-Range: the ranges apply only when it names the current ETag or Last-Modified
    (filters/range.py's test, nginx's: an ETag byte for byte, a date as a time)."""
    v = ctx.hdr.get(b"if-range")
    if v is None:
        return True
    from ngate.filters.range import if_range_ok as test
    return test(v.strip(), etag.encode("latin-1") if etag else None,
                last_modified.encode("latin-1") if last_modified else None)


def next_boundary() -> str:
    return "%020d" % next(_BOUNDARY)


def multipart_parts(ranges, size: int, content_type: str, boundary: str):
    """(part head bytes, start, end) for each range, and the closing bytes."""
    ct = f"Content-Type: {content_type}\r\n" if content_type else ""
    parts = [(f"\r\n--{boundary}\r\n{ct}Content-Range: bytes {s}-{e - 1}/{size}\r\n\r\n"
              .encode("latin-1"), s, e) for s, e in ranges]
    return parts, f"\r\n--{boundary}--\r\n".encode()
