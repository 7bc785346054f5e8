"""Known CGI response heads: an application's repeated head without parsing it again.

A FastCGI application sends the same head again and again (php-fpm: `Content-type:
text/html; charset=UTF-8` and a blank line). The first STDOUT bytes of a response up to the
first CRLF CRLF are looked up in FastCGIPlan.heads (`lookup`): a head seen once is marked
(None), seen twice it is learned (`learn`, called by FastCGIWire.send_head with the head's
parse and split), and from then on the parse and split are taken from the entry. Only heads
the CGI parser (fastcgi/cgi.py) reads the same way are learned: every line ending in CRLF,
no Status below 200, 204 or 304, no X-Accel-* header, at most _KNOWN_LEN bytes.

For a FastCGIPlan.plain location (no add_header, userid, body filters, charset,
fastcgi_force_ranges nor cache) the client's HTTP/1.1 head is pre-rendered around its Date
and Connection lines (`send_known`): the bytes write_head would build, with one join.
"""
from __future__ import annotations

from ngate.http import respond
from ngate.http1 import response as resp

_KNOWN_MAX = 64         # heads kept per location (emptied when full)
_KNOWN_LEN = 1024       # longer heads are parsed every time
_MARK = b"\0connection\0"   # where build_head puts the Connection line


def lookup(heads: dict, data: bytes):
    """(entry, the head's length) for the head at the start of `data`: entry is a learned tuple,
    True when the head may be learned now (seen before), None otherwise."""
    cut = data.find(b"\r\n\r\n") + 4
    if cut <= 4 or cut > _KNOWN_LEN:
        return None, 0
    key = data[:cut]
    known = heads.get(key, False)
    if known is False:
        if len(heads) >= _KNOWN_MAX:
            heads.clear()
        heads[key] = None       # seen once
        return None, 0
    if known is None:
        return True, cut
    return known, cut


def learn(ex, head: bytes, split: tuple) -> None:
    """Keep a head's parse (ex.status, ex.reason, ex.resp_headers) and split in the plan's
    heads: (status, reason, headers, split, Content-Length, client head pieces or None)."""
    status = ex.status
    if status < 200 or status == 204 or status == 304 or ex.accel is not None \
            or head.startswith(b"\r\n") or head.count(b"\n") != head.count(b"\r\n") \
            or head.count(b"\r") != head.count(b"\n"):
        return
    conf = ex.conf
    out, ctype, length, lastmod = split[:4]
    clen = None
    if length is not None:
        try:
            clen = int(length)
        except ValueError:
            clen = None
    plan = ex.plan
    pieces = None
    if plan.plain and (clen is not None or conf.chunked_transfer_encoding):
        reason = ex.reason         # (None: nginx's own status line, as write_head's)
        tokens = conf.server_tokens
        pre = resp.build_head(status, 1, server_tokens=tokens, reason=reason, date=False)[:-2]
        full = resp.build_head(status, 1, server_tokens=tokens, content_type=ctype,
                               content_length=clen, last_modified=lastmod,
                               chunked=clen is None, connection=_MARK, headers=out,
                               reason=reason, date=False)
        mid, post = full[len(pre):].split(_MARK)
        pieces = (pre, mid, post)
    plan.heads[head] = (status, ex.reason, tuple(ex.resp_headers), (tuple(out), *split[1:]),
                        clen, pieces)


def send_known(ex, ctx, known: tuple) -> None:
    """write_head for a known head with pieces, to an HTTP/1.1 client, not HEAD (FastCGIWire's
    send_head checks): the same bytes and fields."""
    ctx.resp_headers = list(known[3][0])
    ex.head_only = False
    clen = ex.resp_length = known[4]
    ex.chunked_out = clen is None
    respond.check_keepalive(ctx)
    pre, mid, post = known[5]
    ctx.status = known[0]
    head = b"".join((pre, resp.DATE.get(), mid,
                     ex.conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE, post))
    ctx.head_sent = True
    ctx.bytes_sent = len(head)
    ex._emit(head)
