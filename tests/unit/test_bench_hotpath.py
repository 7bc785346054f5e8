"""bench/hotpath.py's rounds do what they measure: each mode's own assertions (the response
written, the connection closed, the runtime left without connections or tunnels) hold."""
from __future__ import annotations

from bench import hotpath


def test_ws_rounds_open_and_close_a_tunnel_each():
    # run_ws asserts the 101 reached the client, both fake transports were closed and the
    # runtime holds no connection and no tunnel after the client's close
    assert hotpath.run_ws(20) > 0


def test_close_rounds_use_a_connection_each():
    assert hotpath.run_return(20, close=True) > 0


def test_proxied_rounds():
    assert hotpath.run(20) > 0
