"""A chunked upstream response body, read as nginx reads it (ngx_http_parse_chunked).

llhttp refuses chunk-size lines and chunk ends with a bare LF ("Expected LF after chunk size"),
which nginx accepts: ngx_http_proxy_chunked_filter and ngx_http_proxy_non_buffered_chunked_filter
parse upstream bodies with the same ngx_http_parse_chunked as request bodies. Once the head of a
chunked response is parsed, ChunkedResponseBody takes llhttp's place as the exchange's parser
(same `feed_data` interface): the decoded data goes to the exchange's `response_body`, the end of the
body to its `response_end`, and bytes nginx refuses raise httptools.HttpParserError (the
exchange turns it into "upstream sent invalid chunked response"). Trailers are dropped, as nginx
1.22 drops them. Bytes after the last chunk are logged ("upstream sent data after final chunk")
and close the connection. $upstream_response_length counts the body as read (framing included).
"""
from __future__ import annotations

import httptools

from ngate.http1.request import BodyError, ChunkedDecoder


class ChunkedResponseBody:
    """The parser of one chunked response body (a stand-in for llhttp after the head)."""
    __slots__ = ("exchange", "uconn", "decoder")

    def __init__(self, exchange, uconn) -> None:
        self.exchange = exchange
        self.uconn = uconn
        self.decoder = ChunkedDecoder()

    def feed_data(self, data: bytes) -> None:
        ex = self.exchange
        a = ex.attempt
        length = a.response_length
        try:
            end = self.decoder.feed(data, ex.response_body)
        except BodyError as exc:
            raise httptools.HttpParserError(str(exc)) from None
        finally:
            # $upstream_response_length: the bytes read, chunk framing included, as nginx adds
            # them (the event pipe's read_length, or each recv() with proxy_buffering off)
            a.response_length = length + len(data)
        if end >= 0:
            u = self.uconn
            if u.parser is self:
                u.parser = None             # the connection's next response: llhttp again
            if end < len(data):
                ex.wire.log_leftover(ex)    # logged before the response ends, as nginx does
                u.close()                   # never reused
            ex.response_end()
