"""Shared fixtures: the program under test (nginx or ngate), recording backends, differential pairs."""
from __future__ import annotations

import pytest

from tests.harness.backend import Backend
from tests.harness.differential import Differential
from tests.harness.processes import KINDS, ProxyProcess, fresh_prefix, require_kind


@pytest.fixture(params=KINDS)
def proxy_kind(request) -> str:
    """"nginx" or "ngate": e2e tests run against both. A missing nginx fails under CI=true."""
    require_kind(request.param)
    return request.param


@pytest.fixture
def start_proxy(proxy_kind, tmp_path):
    """`start_proxy(conf, **params) -> ProxyProcess`, started, stopped at teardown."""
    procs: list[ProxyProcess] = []

    def start(conf: str, **params) -> ProxyProcess:
        prefix = fresh_prefix(tmp_path, f"{proxy_kind}-{len(procs)}")
        proc = ProxyProcess(proxy_kind, conf, prefix, **params)
        procs.append(proc)
        return proc.start()

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
def backend():
    with Backend() as b:
        yield b


@pytest.fixture(scope="module")
def differential(tmp_path_factory):
    """`differential(conf, backends=("backend",), **params) -> Differential`, started once per
    module (share it through a module-scoped fixture), stopped at module teardown."""
    pairs: list[Differential] = []

    def make(conf: str, backends: tuple[str, ...] = ("backend",), **params) -> Differential:
        pair = Differential(conf, tmp_path_factory.mktemp("diff"), backends, **params)
        pairs.append(pair)
        return pair.start()

    yield make
    for pair in pairs:
        pair.stop()
