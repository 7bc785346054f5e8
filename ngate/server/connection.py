"""The downstream HTTP/1.x connection: an asyncio Protocol around nginx's request parser.

HttpConnection holds the connection's state (its slots) and the asyncio Protocol callbacks; its
parts live in mixins, each with the states it owns:
  server/request_head.py  a complete head: parsed (nginx's rules, cached), a Request, dispatched
  server/framing.py       what the next bytes are (head, Content-Length or chunked body, discard)
  server/lifecycle.py     finish_request, keep-alive, lingering close, tunnels, the timeouts
  server/sending.py       write, limit_rate, write backpressure, send_timeout

States of a connection:
  reading head  -> headers parsed: a RequestContext is made and handed to http/phases.py
  in request    -> the HTTP core answers (directly or through an upstream); body bytes that arrive
                   are passed to the request's body consumer or buffered (bounded: reading pauses)
  keep-alive    -> waiting for the next request (keepalive_timeout), pipelined requests queued
  upgrading     -> a request carrying Upgrade is in flight: further bytes are held unparsed until
                   the upstream answers (101: the tunnel takes both transports; else HTTP resumes)
  closed

Timeouts share one coarse deadline (server/clock.py): client_header_timeout is armed here when a
head does not arrive whole, client_body_timeout after each read of an incomplete body; the others
in server/lifecycle.py and server/sending.py.
"""
from __future__ import annotations

import time
from collections import deque

from ngate.http import downstream, phases
from ngate.observability import error_log
from ngate.server import flow
from ngate.server.clock import OneTimer
from ngate.server.framing import _BODY_BUFFER_LIMIT, Framing
from ngate.server.lifecycle import Lifecycle
from ngate.server.request_head import (Http09Transport, HeadParsing, Request, head_table,
                                       header_key, line_table, name_table)
from ngate.server.sending import Sending
from ngate.server.turn_writes import DeferredTransport

_new = object.__new__
_header_timeout = Lifecycle._header_timeout

__all__ = ["HttpConnection", "Http09Transport", "Request", "head_table", "header_key",
           "line_table", "name_table"]


class HttpConnection(HeadParsing, Framing, Lifecycle, Sending, OneTimer):
    """The HTTP/1.x downstream connection: its state (the slots) and the asyncio Protocol; the
    mixins own the head parse, the framing, the lifecycle and the write path (module docstring)."""
    __slots__ = (
        "runtime", "listen", "transport", "number", "requests",
        "remote_addr", "remote_port", "server_addr", "server_port", "scheme",
        # parsing state
        "_url", "_buf", "_line_done", "_more", "_rest", "_left", "_chunked", "_body_req",
        "_in_head",
        # request state
        "current", "queue", "writer", "closing", "write_paused", "held", "timer", "tls",
        "deadline", "write_mark", "lost", "rejected", "linger",
        "proxy_protocol",   # server/proxy_protocol.py ProxyHeader, or None
        "started", "ka_timeout",
        "ka_young",         # started + KA_YOUNG, -inf once the worker drains (http/respond.py)
        "rate_check",       # limit_rate in the config or set by a request: writes go through
        "limiter",          # server/ratelimit.py RateLimiter of the current response (or False)
        "trace",            # the HTTP core's recorder: None (only ngate explain's stand-in has
                            # one); a slot, as http/phases.py reads it for every request (a
                            # class attribute's read is not specialised: ~0.2k instructions)
    )
    handed_over = False     # a fresh accept (server/tls.py's connections are handed over)
    start_tunnel = None     # an HTTP/2 stream's own (proxy/tunnel.py): ours is become_tunnel

    def __init__(self, runtime, listen) -> None:
        self.runtime = runtime
        self.listen = listen            # server/runtime.py ListenState
        self.transport = None
        self._url = b""
        self._buf = None                # bytearray: a request head that has not arrived whole
        self._line_done = False         # its request line was checked
        self._left = 0                  # Content-Length body bytes still to read (or _DISCARD)
        self._chunked = None            # http1/request.py ChunkedDecoder of a chunked body
        self._body_req = None           # the Request whose body is being read
        self._more = False              # bytes after the piece being handled wait in this read
        self._rest = None               # those bytes while a head is dispatched (discard_buffered)
        self.number = 0
        self.requests = 0
        self.scheme = listen.scheme
        self.current: Request | None = None
        self.queue: deque | None = None
        self.writer = None              # the response producer (for pause/resume_writing)
        self.closing = False
        self.write_paused = False
        self.held: bytearray | None = None   # bytes after an Upgrade request, unparsed
        self.timer = None
        self.tls = None
        self.write_mark = 0             # write buffer size when send_timeout was last armed
        self.lost = None                # the exception connection_lost reported (None: EOF)
        self.rejected = None            # (HeadError, url) of a bad pipelined head, answered in turn
        self.linger = None              # lingering close: (end time, lingering_timeout)
        self.proxy_protocol = None
        self._in_head = False           # a head has begun and is not complete
        self.ka_timeout = listen.keepalive_timeout      # the last request's location's
        self.rate_check = runtime.config.limit_rate_used
        self.limiter = None
        self.trace = None

    # ------------------------------------------------------------ asyncio Protocol

    def connection_made(self, transport) -> None:
        # every write and close goes through DeferredTransport: responses leave at the end of
        # the loop's turn, in order (server/turn_writes.py); made here without its __init__'s
        # frame (a new connection's calls are written out: bench/PROFILE.md, Session 10
        # (s10-connsetup))
        runtime = self.runtime
        listen = self.listen
        self.transport = t = _new(DeferredTransport)
        t.transport = transport
        t.out = None
        t.turn = runtime.client_writes
        self.started = time.monotonic()     # keepalive_time, $connection_time
        self.ka_young = self.started + runtime.ka_young_after   # (-inf: draining)
        conns = runtime.connections
        if runtime.stats is None and len(conns) + 2 * len(runtime.tunnels) \
                - runtime.stream_tunnels < runtime.worker_connections:
            conns.add(self)                 # runtime.connection_opened's usual case, written out
            runtime._connections_warned = runtime._handover = False
        elif not runtime.connection_opened(self):
            self.closing = True
            return
        # a TLS connection keeps the number its handshake logged with (tls.py)
        if not self.number:
            runtime._counter += 1           # runtime.next_connection_number(), written out
            self.number = runtime._counter
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_addr = peer[0]
            self.remote_port = str(peer[1])
            local = listen.local
            if local is None:       # a wildcard address: which one the client reached
                sock = transport.get_extra_info("sockname")
                local = sock[0], str(sock[1])
            self.server_addr, self.server_port = local
        else:   # unix socket
            self.remote_addr, self.remote_port = "unix:", ""
            self.server_addr, self.server_port = "unix:", ""
        if listen.ssl_context is not None:
            # Host alone picks the request's server, as nginx 1.22 (the SNI server does not
            # become the default: checked against nginx)
            self.tls = transport.get_extra_info("ssl_object")
        # client_header_timeout from the accept (nginx's post-accept timeout): _arm, written out
        timeout = listen.default_server.client_header_timeout
        if timeout > 0:
            self.timer = _header_timeout
            deadlines = runtime.deadlines       # deadlines.watch(self), written out
            if deadlines.handle is not None:    # (the tick's time: server/clock.py)
                self.deadline = deadlines.now + timeout
                deadlines.watched.add(self)
            else:
                self.deadline = runtime.loop.time() + timeout
                deadlines.watch(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            if self.linger is not None:
                self._linger_more()
            return
        if self.held is not None:
            self.held += data
            if len(self.held) > _BODY_BUFFER_LIMIT:
                flow.pause(self)
            return
        # starting: no head begun and no request current (a head that does not arrive whole
        # from here arms client_header_timeout, below)
        if self._left == 0 and self._chunked is None and data:
            parsed = self.listen.fast_heads.get(data) if self._buf is None else None
            if parsed is not None:
                # _feed_head's first case, without its frame: a head seen before, alone in
                # this read (server/framing.py says why nothing follows it); no head begun
                # (without stub_status, `_in_head` only with `_buf`; with it, fast_heads is
                # empty: server/runtime.py ListenState)
                starting = self.current is None
                self._head(data, parsed)
            else:
                starting = self._in_head is False and self.current is None
                data = self._feed_head(data)    # _feed's usual first state, without its frame
                if data:
                    self._feed(data)
                else:
                    self._more = False
        else:
            starting = self._in_head is False and self.current is None
            self._feed(data)
        if starting and self._in_head:
            # a head that did not arrive whole: client_header_timeout runs from its first bytes
            # (a head that did needs no timer: the common case costs nothing)
            self._arm(self.listen.default_server.client_header_timeout, _header_timeout)
        cur = self.current
        if cur is not None and not cur.complete and not self._in_head and not self.write_paused \
                and not self.closing and self.held is None:
            self._arm((cur.ctx.conf or self.listen.default_server.conf).client_body_timeout,
                      Lifecycle._body_timeout)

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.lost = exc
        if not self.closing and self.current is None and self.requests and not self._in_head:
            error_log.info("client %s closed keepalive connection" % self.remote_addr, self.number)
        self.closing = True
        self.timer = None
        runtime = self.runtime
        runtime.deadlines.watched.discard(self)     # unwatch: also when _head left it watched
                                                    # without a timer
        if self.limiter:
            self.limiter.cancel()
            self.limiter = None
        if runtime.stats is None and not error_log.LOG.bound:
            runtime.connections.discard(self)   # runtime.connection_closed(self), written out
            runtime._handover = False
        else:
            runtime.connection_closed(self)
        if self._in_head:
            self._end_head()
        cur = self.current
        if cur is not None and not cur.discard and (self.writer is not None
                                                    or not cur.ctx.logged):
            downstream.client_closed(cur.ctx)   # (a no-op for a request answered and logged:
                                                # the usual close after a response)
        if cur is not None and cur.ctx.stat_writing and runtime.stats is not None:
            runtime.stats.request_done(cur.ctx)     # ended without a log line
        self.current = None
        self.queue = None
        self._body_req = None

    def can_hand_over(self) -> bool:
        """server/plain_transport.py asks at a read after a response: the connection is idle
        between requests (nothing in flight, queued, deferred or held), so it may go on in
        uvloop's transport."""
        return self.current is None and not self._in_head and not self.closing \
            and not self.queue and self.held is None and self.rejected is None \
            and self.transport.out is None and not self.write_paused

    def transport_adopted(self, old, new) -> None:
        """server/plain_transport.py's hand-over: uvloop's transport `new` replaces `old`."""
        t = self.transport
        if t is not None and t.transport is old:
            t.transport = new

    # ------------------------------------------------------------ used by the HTTP core (ngate/http/)

    # A parsed request goes to the HTTP core: self.start_request(ctx, req) is http/driver.py's
    # start_request itself, no frame between (server/https.py's subclasses check TLS first)
    start_request = staticmethod(phases.start_request)

    def attach_body(self, req: Request, consumer) -> None:
        """Route this request's body to `consumer` (buffered chunks first)."""
        req.consumer = consumer
        chunks = req.body
        req.body = None
        if chunks:
            for c in chunks:
                consumer.body_data(c)
        if req.complete:
            consumer.body_end()
        else:
            flow.resume(self)
