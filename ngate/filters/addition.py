"""add_before_body / add_after_body (ngx_http_addition_filter_module): the bodies of subrequests
to two URIs before and after the main response's body.

Only a main request's 200 of addition_types (text/html by default) gets them; Content-Length and
Accept-Ranges are dropped and ETag becomes weak. The subrequests' bodies go into the response in
order through filters/postpone.py (their heads are never sent); nginx starts the "before" one
with the first body data and the "after" one at the end of the body.
"""
from __future__ import annotations

from ngate.filters import HeadersOut, content_type_in, filter_types


class AdditionFilter:
    __slots__ = ("before", "after", "types")

    def __init__(self, before, after, types: frozenset) -> None:
        self.before = before
        self.after = after
        self.types = filter_types(types)

    def header(self, ctx, out: HeadersOut):
        if out.status != 200 or ctx.main is not None:
            return None
        if not content_type_in(self.types, out.content_type):
            return None
        out.content_length = None
        out.remove(b"accept-ranges")
        out.weak_etag()
        return AdditionBody(self.before, self.after)


class AdditionBody:
    """A marker for PostponeChain, which starts the two subrequests."""
    postpones = True
    addition = True
    __slots__ = ("before", "after")

    def __init__(self, before, after) -> None:
        self.before = before
        self.after = after


def include(ctx, node, uri: str) -> None:
    """A subrequest for `uri` whose body goes into a new child of `node`."""
    from ngate.proxy import subrequest
    uri, sep, args = uri.partition("?")
    child = node.child()
    conn = subrequest.start(ctx, uri, _done, args=args if sep else None, node=child)
    root = node.root
    if root is not None and not conn.finished:
        root.subs.append(conn)


def _done(sub_ctx, status, headers) -> None:
    pass
