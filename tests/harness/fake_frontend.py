"""A front end without a socket or an event loop for the HTTP core (http/phases.py, driver.py):
requests are fed to the phases by hand, each decision the core asks to carry out is recorded
(`decisions`), and what http/respond.py writes lands in `out`. Loop timers (auth_delay) are
recorded in `timers` and fired by the test (`fire`).

    fe = FakeFrontEnd(load_http(tmp_path, "server { listen 8080; return 200 ok; }"))
    ctx = fe.request("GET", "/")
    fe.decisions        # [ReturnOp(...)]
    fe.status_line()    # "HTTP/1.1 200 OK"
"""
from __future__ import annotations

import time

from ngate.http import driver, phases
from ngate.http.context import RequestContext
from ngate.http.log import log_request
from ngate.server.runtime import ListenState


class FakeLoop:
    def __init__(self) -> None:
        self.timers: list = []

    def call_later(self, delay, callback, *args):
        self.timers.append((delay, callback, args))


class FakeRuntime:
    def __init__(self) -> None:
        self.loop = FakeLoop()
        self.draining = False
        self.logged: list = []

    def access_log(self, ctx) -> None:
        self.logged.append(ctx.status)


class FakeFrontEnd:
    """`ctx.conn` of the requests it makes: what the core needs of a front end, recorded."""
    ka_young = float("-inf")    # http/respond.py KA_YOUNG: check_keepalive's whole test

    def __init__(self, config, key=None) -> None:
        key = key if key is not None else next(iter(config.by_listen))
        default, servers = config.by_listen[key]
        self.listen = ListenState(key, default, servers)
        self.runtime = FakeRuntime()
        self.decisions: list = []
        self.out = bytearray()
        self.finished: list = []
        self.closed = False
        self.closing = False
        self.writer = None
        self.transport = self
        self.trace = None
        self.started = time.monotonic()
        self.scheme = "http"
        self.server_addr = "127.0.0.1"
        self.server_port = str(key[1])
        self.remote_addr = "127.0.0.1"
        self.remote_port = "40000"
        self.tls = None
        self.proxy_protocol = None
        self.number = 1
        self.requests = 1
        self.queue = None

    # ------------------------------------------------------------ what the core calls

    def write(self, data) -> None:
        self.out += data

    def finish_request(self, ctx) -> None:
        self.finished.append(ctx)
        log_request(ctx)

    def close(self) -> None:            # transport.close
        self.closed = True

    def abort(self) -> None:
        self.closing = True

    # ------------------------------------------------------------ driving

    def request(self, method: str, target: str, headers=(), content_length=None
                ) -> RequestContext:
        """Feed one request to the phases and carry out their decisions."""
        raw = [(b"Host", b"localhost")] + [(n.encode(), v.encode()) for n, v in headers]
        hdr: dict = {}
        for name, value in raw:
            hdr.setdefault(name.lower(), value)
        ctx = RequestContext(self, method, target, "1.1", raw, hdr)
        ctx.content_length_in = content_length
        self.carry_out(ctx, phases.begin(ctx, None))
        return ctx

    def carry_out(self, ctx, d) -> None:
        """http/driver.py carry_out, one decision at a time, each recorded."""
        while d is not None:
            self.decisions.append(d)
            nxt = driver.step(ctx, d)
            d = driver.answer(ctx, d) if nxt is d else nxt

    def fire(self) -> None:
        """Run the loop timers set so far."""
        timers, self.runtime.loop.timers = self.runtime.loop.timers, []
        for _delay, callback, args in timers:
            callback(*args)

    # ------------------------------------------------------------ reading the answer

    def head(self) -> str:
        return bytes(self.out).partition(b"\r\n\r\n")[0].decode("latin-1")

    def status_line(self) -> str:
        return self.head().split("\r\n")[0]

    def header(self, name: str) -> str | None:
        for line in self.head().split("\r\n")[1:]:
            n, _, v = line.partition(":")
            if n.lower() == name.lower():
                return v.strip()
        return None

    def body(self) -> bytes:
        return bytes(self.out).partition(b"\r\n\r\n")[2]
