"""nginx's not_modified filter (ngx_http_not_modified_filter_module): If-Unmodified-Since and
If-Match (412), If-Modified-Since under if_modified_since, If-None-Match (304)."""
from __future__ import annotations

from email.utils import parsedate_to_datetime


def not_modified(hdr: dict, conf, mtime: int, etag: str | None) -> int | None:
    """ngx_http_not_modified_filter: 412 or 304, or None to send the file."""
    ius = hdr.get(b"if-unmodified-since")
    if ius is not None:
        t = http_date(ius)
        if t is not None and mtime > t:
            return 412
    im = hdr.get(b"if-match")
    if im is not None and not etag_matches(im, etag, weak=False):
        return 412
    ims = hdr.get(b"if-modified-since")
    inm = hdr.get(b"if-none-match")
    if ims is None and inm is None:
        return None
    if ims is not None and _modified(conf, ims, mtime):
        return None
    if inm is not None and not etag_matches(inm, etag, weak=True):
        return None
    return 304


def _modified(conf, value: bytes, mtime: int) -> bool:
    mode = conf.if_modified_since
    if mode == "off":
        return True
    t = http_date(value)
    if t is None:
        return True
    return mtime != t if mode == "exact" else mtime > t


def etag_matches(value: bytes, etag: str | None, weak: bool) -> bool:
    v = value.decode("latin-1").strip()
    if v == "*":
        return True
    if etag is None:
        return False
    for item in v.split(","):
        item = item.strip()
        if weak and item.startswith("W/"):
            item = item[2:]
        if item == etag:
            return True
    return False


def http_date(value: bytes) -> int | None:
    try:
        return int(parsedate_to_datetime(value.decode("latin-1")).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
