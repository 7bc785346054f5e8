"""proxy/request_body.py: replay, pending bytes and spooling of a request body, no sockets."""
from __future__ import annotations

from types import SimpleNamespace

from ngate.proxy import request_body as rb


def _conf(buffer_size=16384, tmp=None):
    return SimpleNamespace(client_body_buffer_size=buffer_size, client_body_temp_path=tmp,
                           client_body_in_file_only="off")


def test_bytes_held_while_connecting_go_out_first_and_once():
    body = rb.RequestBody(_conf(), rb.LENGTH)
    for piece in (b"ab", b"cd"):
        body.received(piece)
        assert body.hold(piece) is False
    assert body.take() == [b"ab", b"cd"]
    assert body.pending == [] and body.pending_size == 0
    body.received(b"ef")                            # written straight to the connection
    assert body.take() == [b"ab", b"cd", b"ef"]     # a retry sends the whole body again


def test_the_client_pauses_when_too_much_is_held():
    body = rb.RequestBody(_conf(), rb.CHUNKED)
    big = b"x" * (rb.PENDING_LIMIT // 2)
    body.received(big)
    assert body.hold(big) is False
    body.received(big + b"y")
    assert body.hold(big + b"y") is True


def test_past_the_replay_limit_only_the_unsent_bytes_remain():
    body = rb.RequestBody(_conf(), rb.STREAM)
    first = b"a" * rb.REPLAY_LIMIT
    body.received(first)
    body.hold(first)
    assert body.replayable
    body.received(b"b")
    body.hold(b"b")
    assert not body.replayable and body.replay == []
    assert body.take() == [first, b"b"]             # the first connection still gets it all


def test_request_body_variable_of_a_streamed_body():
    body = rb.RequestBody(_conf(buffer_size=4), rb.LENGTH)
    body.received(b"abc")
    assert body.memory() is None                    # not read whole yet
    body.done = True
    assert body.memory() == b"abc" and body.name is None
    body.received(b"de")
    assert body.memory() is None                    # past client_body_buffer_size


def test_a_buffered_body_lives_in_its_spool(tmp_path):
    body = rb.RequestBody(_conf(buffer_size=4, tmp=(str(tmp_path), ())), rb.BUFFER)
    assert body.memory() is None and not body.streamed
    assert body.spool_add(b"abc") is None
    assert body.memory() == b"abc" and body.total == 3
    name = body.spool_add(b"de")                    # past client_body_buffer_size: a file
    assert name is not None and body.name == name and body.memory() is None
    body.close()


def test_no_body():
    body = rb.RequestBody(_conf(), rb.NONE)
    assert body.done and body.replayable and body.take() == [] and body.memory() is None
