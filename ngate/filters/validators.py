"""add_header Last-Modified / add_header ETag: nginx's headers filter replaces the response's own
validator instead of adding a second one (ngx_http_set_last_modified,
ngx_http_set_response_header), and an empty value removes it.

The headers filter runs after not_modified and before the range filter: a 304 or 412 is decided
on the content's own validators, If-Range on the replaced ones (range_if_range.t).
"""
from __future__ import annotations

NAMES = frozenset({b"last-modified", b"etag"})
# add_header applies to these without `always` (ngx_http_headers_filter)
ADD_HEADER_CODES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})


def overrides(ctx, conf, status: int):
    """The location's add_header Last-Modified / ETag rendered for this response: a list of
    (lower-case name, name, value; b"" removes), or None when it has neither (or they do not
    apply to this status)."""
    ok = status in ADD_HEADER_CODES
    found = None
    for h in conf.headers.add_header:
        if h.lname in NAMES and (ok or h.always):
            if found is None:
                found = []
            found.append((h.lname, h.name.encode("latin-1"),
                          h.value.render(ctx).encode("latin-1", "replace")))
    return found


def apply(headers: list, found) -> None:
    """Replace (in place: the header keeps its position) or remove the response's validators in
    `headers`; a validator the response did not have is added at the end."""
    for lname, name, value in found:
        i = next((k for k, (n, _) in enumerate(headers) if n.lower() == lname), -1)
        if i >= 0:
            headers[i:] = [h for h in headers[i:] if h[0].lower() != lname]
            if value:
                headers.insert(i, (name, value))
        elif value:
            headers.append((name, value))


def value(found, lname: bytes, own):
    """The validator `lname` after the replacement (None: none)."""
    for n, _, v in found:
        if n == lname:
            own = v or None
    return own
