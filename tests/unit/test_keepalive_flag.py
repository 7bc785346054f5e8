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


UAS = (None, b"Mozilla/4.0 (compatible; MSIE 5.0; Windows 98)",
       b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6) Safari/7534.48.3", b"curl/8")


@pytest.mark.parametrize("timeout", [75.0, 0.0])
@pytest.mark.parametrize("disable", [frozenset({"msie6"}), frozenset({"safari"}), frozenset(),
                                     frozenset({"msie6", "safari"})])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("ua", UAS)
@pytest.mark.parametrize("requests, age, draining", [(1, 0.0, False), (1000, 0.0, False),
                                                     (1, 4000.0, False), (1, 0.0, True)])
def test_plain_head_test_agrees_with_check_keepalive(timeout, disable, method, ua, requests,
                                                      age, draining):
    """send_response's keep-alive test (written out below as there) against check_keepalive."""
    conf = modules.bind(dataclasses.replace(LocConf(), keepalive_timeout=timeout,
                                            keepalive_disable=disable))
    conn = SimpleNamespace(closing=False, runtime=SimpleNamespace(draining=draining),
                           requests=requests, started=100.0)
    hdr = {} if ua is None else {b"user-agent": ua}

    def ctx():
        return SimpleNamespace(keep_alive=True, conn=conn, conf=conf, method=method, hdr=hdr,
                               start=100.0 + age)
    general = ctx()
    respond.check_keepalive(general)
    plain = ctx()
    if plain.keep_alive and (
            conf.ka_full or conn.runtime.draining
            or conn.requests >= conf.keepalive_requests
            or plain.start - conn.started > conf.keepalive_time
            or plain.method == "POST"):
        respond.check_keepalive(plain)
    assert plain.keep_alive is general.keep_alive
