"""upstream/failure.py, upstream/attempts.py and upstream/retry.py: pure, no sockets."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ngate.routing.variables import registry
from ngate.upstream import attempts
from ngate.upstream.failure import (Failure, Phase, UpstreamError, closed, connect_failed,
                                    invalid_header, timed_out)
from ngate.upstream.retry import may_retry

# ---------------------------------------------------------------- the error type


def test_error_kinds_carry_their_condition_and_status():
    assert len({k.value for k in Failure}) == len(Failure)      # no aliases among the kinds
    assert (Failure.CONNECT_TIMEOUT.condition, Failure.CONNECT_TIMEOUT.status) == ("timeout", 504)
    assert (Failure.INVALID_HEADER.condition, Failure.INVALID_HEADER.status) == \
        ("invalid_header", 502)
    assert Failure.NO_LIVE.condition is None


def test_error_messages_are_nginxs():
    err = connect_failed(ConnectionRefusedError(111, "Connection refused"))
    assert err.kind is Failure.CONNECT_REFUSED and err.status == 502
    assert err.message == "connect() failed (111: Connection refused) while connecting to upstream"
    assert timed_out(Phase.HEADER).message == ("upstream timed out (110: Connection timed out) "
                                               "while reading response header from upstream")
    assert timed_out(Phase.CONNECT).kind is Failure.CONNECT_TIMEOUT
    assert timed_out(Phase.BODY).status == 504
    assert closed(Phase.BODY).message == ("upstream prematurely closed connection while "
                                          "reading upstream")
    reset = closed(Phase.HEADER, ConnectionResetError(104, "Connection reset by peer"))
    assert reset.kind is Failure.RESET
    assert reset.detail == "recv() failed (104: Connection reset by peer)"


def test_retry_safe_only_before_the_head_went_out():
    assert timed_out(Phase.CONNECT).retry_safe
    assert invalid_header("upstream sent too big header").retry_safe
    assert not closed(Phase.BODY).retry_safe                    # the client has the head
    assert not UpstreamError(Failure.NO_LIVE, Phase.CONNECT, "no live upstreams").retry_safe


def test_a_logged_error_is_not_logged_again_by_engine_fail():
    err = invalid_header("upstream sent invalid header: x")
    assert err.log_message.endswith("while reading response header from upstream")
    err.logged = True
    assert err.log_message == "" and err.level == "error"


# ---------------------------------------------------------------- the attempts list

def _ctx():
    return SimpleNamespace(upstream_tries=None)


def _var(name, ctx):
    return registry().names[name](ctx)


def test_no_try_renders_no_variable():
    ctx = _ctx()
    for name in ("upstream_addr", "upstream_status", "upstream_response_time",
                 "upstream_connect_time", "upstream_header_time", "upstream_bytes_sent",
                 "upstream_bytes_received", "upstream_response_length"):
        assert _var(name, ctx) is None


def test_tries_render_one_value_each_with_dash_for_what_was_not_reached():
    ctx = _ctx()
    a = attempts.add(ctx, "127.0.0.1:8081", 10.0, True)
    a.connect_time = 0.0012
    a.status = 502                              # closed before a response
    a.bytes_sent = 80
    b = attempts.add(ctx, "127.0.0.1:8082", 11.5, False)    # ends the first try
    b.connect_time = 0.001
    b.header_time = 0.25
    b.status = 200
    b.bytes_received = 120
    b.response_length = 3
    assert a.response_time == 1.5 and b.response_time is None
    assert _var("upstream_addr", ctx) == "127.0.0.1:8081, 127.0.0.1:8082"
    assert _var("upstream_status", ctx) == "502, 200"
    assert _var("upstream_connect_time", ctx) == "0.001, 0.001"
    assert _var("upstream_header_time", ctx) == "-, 0.250"
    assert _var("upstream_response_time", ctx) == "1.500, -"
    assert _var("upstream_bytes_sent", ctx) == "80, 0"
    assert _var("upstream_bytes_received", ctx) == "0, 120"
    assert _var("upstream_response_length", ctx) == "0, 3"
    b.end(12.0)
    b.end(13.0)                                 # a try ends once
    assert _var("upstream_response_time", ctx) == "1.500, 0.500"


def test_a_later_exchange_is_separated_by_a_colon():
    ctx = _ctx()
    attempts.add(ctx, "a:1", 0.0, True)
    attempts.add(ctx, "a:2", 0.0, False)
    attempts.add(ctx, "b:1", 0.0, True)        # error_page / X-Accel-Redirect to another group
    assert _var("upstream_addr", ctx) == "a:1, a:2 : b:1"
    assert _var("upstream_status", ctx) == "-, - : -"


# ---------------------------------------------------------------- the retry policy

ALL = frozenset({"error", "timeout"})


@pytest.mark.parametrize("kwargs, expected", [
    ({}, True),
    ({"tries": 2}, False),                              # every server tried
    ({"servers": 3, "tries": 2}, True),
    ({"servers": 3, "tries": 2, "tries_limit": 2}, False),   # proxy_next_upstream_tries
    ({"head_sent": True}, False),
    ({"timeout": 1.0, "elapsed": 1.0}, False),          # proxy_next_upstream_timeout
    ({"timeout": 1.0, "elapsed": 0.5}, True),
    ({"method": "POST", "sent": True}, False),          # non-idempotent, already sent
    ({"method": "POST", "sent": False}, True),          # never reached the peer
    ({"method": "PATCH", "sent": True, "conditions": ALL | {"non_idempotent"}}, True),
    ({"method": "PUT", "sent": True}, True),
    ({"replayable": False}, False),                     # the body cannot be sent again
    ({"condition": "invalid_header"}, False),           # not listed
    ({"condition": None}, False),                       # never retried (no live upstreams)
    ({"conditions": frozenset()}, False),               # proxy_next_upstream off
])
def test_may_retry(kwargs, expected):
    args = {"condition": "error", "conditions": ALL, "tries": 1, "servers": 2}
    args.update(kwargs)
    condition, conditions = args.pop("condition"), args.pop("conditions")
    assert may_retry(condition, conditions, **args) is expected
