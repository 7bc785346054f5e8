"""The client's request body as an upstream exchange sends it (proxy_pass, fastcgi_pass).

Modes (chosen by the wire protocol from *_request_buffering, client_body_in_file_only, the
request's framing):
  NONE     nothing goes upstream (no body, proxy_set_body, *_pass_request_body off)
  BUFFER   read whole first into a proxy/body_spool.py BodySpool (memory up to
           client_body_buffer_size, then a temp file); the exchange connects at its end
  LENGTH   streamed as it arrives, the client's Content-Length sent upstream
  CHUNKED  streamed as it arrives, chunked upstream (proxy_http_version 1.1)
  STREAM   streamed as it arrives, framed by the protocol (FastCGI STDIN records)

A streamed body's bytes are `pending` until the current upstream connection takes them (while
connecting; `hold` says when the client must pause: above PENDING_LIMIT). While the whole body
so far fits REPLAY_LIMIT it is also kept in `replay`, so that a retry on another connection
(a pooled connection found closed, proxy_next_upstream) sends it again; past it the body is no
longer replayable and no retry happens once some of it was sent.

It is also ctx.body_spool: $request_body (memory()) and $request_body_file (name).
"""
from __future__ import annotations

from ngate.proxy.body_spool import BodySpool

NONE, BUFFER, LENGTH, CHUNKED, STREAM = "none", "buffer", "length", "chunked", "stream"
REPLAY_LIMIT = 65536        # body bytes kept to send again on another connection
PENDING_LIMIT = 65536       # unsent body bytes held while connecting; the client pauses above


class RequestBody:
    __slots__ = ("conf", "mode", "done", "total", "replay", "replayable", "pending",
                 "pending_size", "spool")

    def __init__(self, conf, mode: str) -> None:
        self.conf = conf
        self.mode = mode
        self.done = mode == NONE    # the client's body is read to its end (or none is sent)
        self.total = 0              # body bytes received from the client
        self.replay = []            # the whole body so far, while replayable
        self.replayable = True
        self.pending = []           # bytes not written to the current connection yet
        self.pending_size = 0
        self.spool = None           # BUFFER: the BodySpool, once a byte arrived

    @property
    def streamed(self) -> bool:
        return self.mode is not NONE and self.mode is not BUFFER

    def spool_add(self, data: bytes) -> str | None:
        """BUFFER: keep data; the temp file's name when this call created it (to log). Raises
        body_spool.SpoolError when the file cannot be made."""
        self.total += len(data)
        sp = self.spool
        if sp is None:
            sp = self.spool = BodySpool(self.conf)
        return sp.add(data)

    def received(self, data: bytes, merge: bool = False) -> None:
        """A piece of a streamed body arrived (sent at once or held: see hold); `merge`: it
        joins the previous piece (a chunked body's pieces of one client read go as one)."""
        self.total += len(data)
        if self.replayable:
            if self.total <= REPLAY_LIMIT:
                replay = self.replay
                if merge and replay:
                    replay[-1] += data
                else:
                    replay.append(data)
            else:
                self.replayable = False
                self.replay = []

    def hold(self, data: bytes, merge: bool = False) -> bool:
        """Keep data until a connection takes it; True: the client should pause reading."""
        pending = self.pending
        if merge and pending:
            pending[-1] += data
        else:
            pending.append(data)
        self.pending_size += len(data)
        return self.pending_size > PENDING_LIMIT

    def take(self) -> list:
        """What a newly attached connection is sent first: the whole body so far while it is
        replayable (a retry sends it again), else the bytes held since connecting."""
        chunks = list(self.replay) if self.replayable else self.pending
        self.pending = []
        self.pending_size = 0
        return chunks

    @property
    def name(self) -> str | None:
        """$request_body_file."""
        sp = self.spool
        return None if sp is None else sp.name

    def memory(self) -> bytes | None:
        """$request_body: a spooled body while in memory; a streamed one read whole that fits
        client_body_buffer_size (nginx still has it in its buffers; the replay copy here)."""
        sp = self.spool
        if sp is not None:
            return sp.memory()
        if not self.streamed or not self.replayable or not self.done \
                or self.total > self.conf.client_body_buffer_size:
            return None
        return b"".join(self.replay)

    def close(self) -> None:
        sp = self.spool
        if sp is not None:
            sp.close()


NO_BODY = RequestBody(None, NONE)   # shared by every exchange that sends no body (never changed)
