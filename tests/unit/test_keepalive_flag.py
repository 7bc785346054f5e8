"""LocConf.ka_full (http/modules.py bind): send_response's plain head tests the keep-alive
limits that vary per request and takes respond.check_keepalive whole when the flag holds or
the request is a POST; the flag is what check_keepalive's per-conf tests would say."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from ngate.config.model import LocConf
from ngate.http import modules, respond


@pytest.mark.parametrize("timeout, disable, full", [
    (75.0, frozenset({"msie6"}), False), (75.0, frozenset(), False),
    (0.0, frozenset({"msie6"}), True), (75.0, frozenset({"safari"}), True),
    (75.0, frozenset({"msie6", "safari"}), True), (0.0, frozenset(), True)])
def test_bind_sets_ka_full(timeout, disable, full):
    conf = dataclasses.replace(LocConf(), keepalive_timeout=timeout, keepalive_disable=disable)
    assert conf.ka_full is True         # unbound: the whole check
    assert modules.bind(conf).ka_full is full


@pytest.mark.parametrize("ka_time, full", [(3600.0, False), (86400.0, False), (3599.5, False),
                                           (respond.KA_YOUNG, True), (10.0, True), (0.0, True)])
def test_bind_sets_ka_full_for_short_keepalive_time(ka_time, full):
    """keepalive_time at or below KA_YOUNG: a connection's ka_young would not tell it."""
    conf = dataclasses.replace(LocConf(), keepalive_time=ka_time)
    assert modules.bind(conf).ka_full is full


UAS = (None, b"Mozilla/4.0 (compatible; MSIE 5.0; Windows 98)",
       b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6) Safari/7534.48.3", b"curl/8")


@pytest.mark.parametrize("timeout", [75.0, 0.0])
@pytest.mark.parametrize("disable", [frozenset({"msie6"}), frozenset({"safari"}), frozenset(),
                                     frozenset({"msie6", "safari"})])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("ua", UAS)
@pytest.mark.parametrize("requests, age, draining", [(1, 0.0, False), (1000, 0.0, False),
                                                     (1, 4000.0, False), (1, 0.0, True),
                                                     (1, respond.KA_YOUNG, False),
                                                     (1, 3599.5, False), (1, 3600.5, False),
                                                     (1, 30.0, False)])
@pytest.mark.parametrize("ka_time", [3600.0, 3599.7, 20.0])
def test_plain_head_test_agrees_with_check_keepalive(timeout, disable, method, ua, requests,
                                                      age, draining, ka_time):
    """send_response's keep-alive test (written out below as there) against check_keepalive;
    the connection's ka_young as server/connection.py and server/runtime.py make it."""
    conf = modules.bind(dataclasses.replace(LocConf(), keepalive_timeout=timeout,
                                            keepalive_disable=disable, keepalive_time=ka_time))
    conn = SimpleNamespace(closing=False, runtime=SimpleNamespace(draining=draining),
                           requests=requests, started=100.0,
                           ka_young=float("-inf") if draining else 100.0 + respond.KA_YOUNG)
    hdr = {} if ua is None else {b"user-agent": ua}

    def ctx():
        return SimpleNamespace(keep_alive=True, conn=conn, conf=conf, method=method, hdr=hdr,
                               start=100.0 + age)
    general = ctx()
    respond.check_keepalive(general)
    plain = ctx()
    if plain.keep_alive and (
            conf.ka_full or plain.start > conn.ka_young
            or conn.requests >= conf.keepalive_requests
            or plain.method == "POST"):
        respond.check_keepalive(plain)
    assert plain.keep_alive is general.keep_alive


def _connection_like_classes():
    """Every class a request's ctx.conn may be, HTTP/1.x's with its subclasses."""
    from ngate.explain.request import FakeConn
    from ngate.http2.stream import Http2Stream
    from ngate.proxy.subrequest import SubrequestConn
    from ngate.server import https
    from ngate.server.connection import HttpConnection
    from ngate.http2 import accept, websocket

    assert https and accept and websocket     # (their HttpConnection subclasses, listed below)
    http1, todo = [], [HttpConnection]
    while todo:
        cls = todo.pop()
        http1.append(cls)
        todo.extend(cls.__subclasses__())
    return http1, [FakeConn, Http2Stream, SubrequestConn]


def test_every_connection_class_has_ka_young():
    """send_response's plain HTTP/1.x head reads ctx.conn.ka_young: HTTP/1.x connections set
    it when they are made (a slot), every other connection-like class has -inf, the whole
    check_keepalive (a subrequest's must not take its parent's: a SubrequestConn passes
    unknown names on, and an HTTP/2 stream parent has none)."""
    from ngate.server.connection import HttpConnection

    http1, others = _connection_like_classes()
    assert len(http1) >= 4
    for cls in http1:
        assert isinstance(cls.__dict__.get("ka_young", HttpConnection.__dict__["ka_young"]),
                          type(HttpConnection.started)), cls      # the slot, not shadowed
    for cls in others:
        assert cls.__dict__["ka_young"] == float("-inf"), cls


def test_connection_made_and_draining_set_ka_young(tmp_path):
    """connection_made: the accept time plus KA_YOUNG; stop_accepting marks the live
    connections -inf, and those accepted after are made with -inf."""
    import asyncio

    from bench.hotpath import RETURN_CONF, FakeTransport, _runtime
    from ngate.server.connection import HttpConnection

    _config, loop, runtime, listen = _runtime(str(tmp_path), RETURN_CONF)
    try:
        a = HttpConnection(runtime, listen)
        a.connection_made(FakeTransport())
        assert a.ka_young == a.started + respond.KA_YOUNG
        runtime.stop_accepting()
        assert runtime.draining and a.ka_young == float("-inf")
        b = HttpConnection(runtime, listen)
        b.connection_made(FakeTransport())
        assert b.ka_young == float("-inf")
    finally:
        asyncio.set_event_loop(None)
        loop.close()
