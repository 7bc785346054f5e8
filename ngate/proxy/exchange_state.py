"""The states of an upstream exchange (proxy/exchange.py) and the one table of its transitions.

  CONNECTING   a peer is chosen and its connection opened (a pooled one is taken at once); a
               buffered request body is read whole first. A failed try comes back here.
  SENDING      the request head went out; a streamed body follows as the client sends it
  READING      the whole request is sent; waiting for the response head (*_read_timeout)
  STREAMING    the response head went to the client; its body follows
  SWITCHING    a 101 to an Upgrade request: the tunnel takes both connections at the read's end
  PASSTHROUGH  HTTP/0.9, or the rest after a 1xx head (nginx 1.22): raw bytes until close
  TUNNEL       proxy/tunnel.py has both transports; the exchange is out of the way
  DONE         ended once (UpstreamExchange.finish): timer off, connection pooled or closed

As in h11, a transition not in the table is a bug in ngate, never something a peer can cause:
it raises ExchangeStateError instead of going on in a state nobody wrote code for.
"""
from __future__ import annotations

from enum import IntEnum


class State(IntEnum):          # IntEnum: hashed and compared as ints on the hot path
    CONNECTING = 1
    SENDING = 2
    READING = 3
    STREAMING = 4
    SWITCHING = 5
    PASSTHROUGH = 6
    TUNNEL = 7
    DONE = 8


CONNECTING, SENDING, READING, STREAMING, SWITCHING, PASSTHROUGH, TUNNEL, DONE = State

TRANSITIONS: dict[State, frozenset] = {
    CONNECTING: frozenset({SENDING, CONNECTING, DONE}),     # a failed connect: the next peer
    # a failed try goes back to CONNECTING; an early response head arrives while SENDING
    SENDING: frozenset({READING, STREAMING, SWITCHING, PASSTHROUGH, CONNECTING, DONE}),
    READING: frozenset({STREAMING, SWITCHING, PASSTHROUGH, CONNECTING, DONE}),
    STREAMING: frozenset({PASSTHROUGH, DONE}),
    SWITCHING: frozenset({TUNNEL, DONE}),
    PASSTHROUGH: frozenset({DONE}),
    TUNNEL: frozenset(),
    DONE: frozenset(),
}

# before the response head: a failure may still go to another peer
BEFORE_HEAD = frozenset({SENDING, READING})


class ExchangeStateError(RuntimeError):
    def __init__(self, old: State, new: State) -> None:
        super().__init__(f"upstream exchange: no transition from {old.name} to {new.name}")
        self.old = old
        self.new = new


def check(old: State, new: State) -> State:
    """`new` when the table allows old -> new, else ExchangeStateError."""
    if new not in TRANSITIONS[old]:
        raise ExchangeStateError(old, new)
    return new
