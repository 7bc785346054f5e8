"""Request-side fuzz stage: request heads and bodies, valid and mutated, fed through a real ngate
in random TCP segmentations, with a recording backend behind it.

Asserted for every input:
- no hang: the server closes the connection (after the last request, which asks to close, or
  after the client's half-close) within a few seconds;
- no traceback, [alert] or [crit] in the error log (nor on stderr);
- every connection closed or reusable: valid requests are all answered, in order, and the
  connection then serves a last request;
- nothing forwarded that the parser rejected: once ngate refuses a request itself (4xx/5xx page),
  no request at or after it reaches the backend; heads forwarded carry no NUL or bare CR, and
  targets the backend sees are only targets the client sent.

Bounded for CI: a fixed number of derandomized examples (about 10-15 s).
"""
from __future__ import annotations

import re
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.backend import Backend
from tests.harness.client import Connection, ProtocolError
from tests.harness.processes import ProxyProcess, fresh_prefix

CONF = """
http {
    client_header_timeout 5s;
    client_body_timeout 5s;
    client_max_body_size 1k;
    large_client_header_buffers 4 2k;
    server {
        listen 127.0.0.1:{port};
        server_name x;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /nb/ {
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{backend_port};
        }
    }
}
"""
BACKEND_BODY = b"ok backend\n"
LAST = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
BAD_LOG = re.compile(r"Traceback|\[alert\]|\[crit\]|\[emerg\]")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    backend = Backend().start()
    proc = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path_factory.mktemp("fuzz"), "ngate"),
                        backend_port=backend.port)
    proc.start()
    yield proc, backend
    proc.stop()
    backend.stop()


# ---------------------------------------------------------------- inputs

VALUE_BYTES = st.binary(max_size=12).map(lambda b: b.translate(None, b"\r\n\x00"))
HEADER_NAMES = st.sampled_from([b"X-A", b"Accept", b"X_Under", b"Cookie", b"User-Agent", b"X-\xc3\xa9",
                                b"Expect", b"Connection", b"Upgrade"])


@st.composite
def chunked_body(draw, lf_only: bool) -> bytes:
    eol = b"\n" if lf_only else b"\r\n"
    out = []
    for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3)):
        ext = draw(st.sampled_from([b"", b" ", b";x=1", b"\t;y"]))
        out.append(b"%x%s%s%s%s" % (len(data), ext, eol, data, eol))
    out.append(b"0" + eol)
    for name, value in draw(st.lists(st.tuples(st.sampled_from([b"Host", b"X-Admin", b"Content-Length",
                                                                 b"Bad Line", b"T"]), VALUE_BYTES),
                                     max_size=2)):
        out.append(name + b": " + value + eol)
    return b"".join(out) + eol


@st.composite
def request(draw, n: int) -> bytes:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"MY_METHOD", b"OPTIONS"]))
    prefix = draw(st.sampled_from([b"/", b"/nb/"]))
    query = draw(st.sampled_from([b"", b"?q=1", b"?\xc3\xa9=%20", b"?a=b&c"]))
    target = prefix + b"t%d" % n + query
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    lines = [method + b" " + target + b" " + version, b"Host: x"]
    if version == b"HTTP/1.0":
        lines.append(b"Connection: keep-alive")
    for name, value in draw(st.lists(st.tuples(HEADER_NAMES, VALUE_BYTES), max_size=4)):
        if name in (b"Connection", b"Upgrade", b"Expect"):
            continue        # valid requests stay plain keep-alive requests
        lines.append(name + b":" + draw(st.sampled_from([b" ", b"", b"  "])) + value)
    body = b""
    kind = draw(st.sampled_from(["none", "length", "chunked"]))
    if kind == "length" or kind == "chunked" and version == b"HTTP/1.0":
        body = draw(st.binary(max_size=40)) + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        lines.append(b"Content-Length: %d" % len(body))
    elif kind == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = draw(chunked_body(lf_only=eol == b"\n"))
    return eol.join(lines) + eol + eol + body


MUTATION_BYTES = st.sampled_from([b"\r", b"\n", b"\x00", b" ", b":", b"\t", b"x", b"0", b"\r\n", b"\xff"])


@st.composite
def mutated(draw, raw: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(0, len(raw) - 1)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        b = draw(MUTATION_BYTES)
        raw = raw[:i] + b + raw[i:] if op == "insert" else \
            raw[:i] + raw[i + 1:] if op == "delete" else raw[:i] + b + raw[i + 1:]
    return raw


@st.composite
def scenario(draw):
    count = draw(st.integers(1, 3))
    reqs = b"".join(draw(request(i)) for i in range(count))
    targets = re.findall(rb"/(?:nb/)?t\d", reqs)
    mutate = draw(st.booleans())
    raw = draw(mutated(reqs)) if mutate else reqs
    raw += LAST
    cuts = sorted(set(draw(st.lists(st.integers(1, len(raw) - 1), max_size=5))))
    return targets, mutate, raw, cuts


# ---------------------------------------------------------------- the run

def exchange(port: int, raw: bytes, cuts: list[int], half_close: bool) -> tuple[list, bool]:
    """Send `raw` in segments; read responses until the server closes: (responses, closed)."""
    responses = []
    with Connection(port, timeout=6.0) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
        try:
            for i, p in enumerate(pieces):
                if i:
                    time.sleep(0.002)
                conn.send(p)
            if half_close:
                time.sleep(0.05)
                conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass        # the server already answered and closed
        while True:
            try:
                responses.append(conn.read_response())
            except ProtocolError:
                return responses, conn.closed_by_peer(6.0)
            except socket.timeout:
                return responses, False
            except OSError:
                return responses, True


@settings(max_examples=70, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(scenario())
def test_fuzz_requests(served, case):
    proc, backend = served
    targets, mutate, raw, cuts = case
    mark = backend.mark()
    log_mark = len(proc.error_log())
    responses, closed = exchange(proc.port, raw, cuts, half_close=mutate)
    assert closed, f"no close within the timeout (hang) for {raw!r}"
    time.sleep(0.05)        # the backend thread records what it was sent
    seen = backend.since(mark)
    log = proc.error_log()[log_mark:]
    assert not BAD_LOG.search(log), log
    assert not BAD_LOG.search(proc.output()), proc.output()
    for r in seen:
        assert b"\x00" not in r.head and r.head.count(b"\r") == r.head.count(b"\r\n"), r.head
        assert r.target == b"/last" or r.target.split(b"?")[0] in raw, r.target
    if not mutate:
        assert [r.target.split(b"?")[0] for r in seen] == targets + [b"/last"], (raw, seen)
        assert [r.status for r in responses] == [200] * (len(targets) + 1), (raw, responses)
        return
    first_refusal = next((i for i, r in enumerate(responses)
                          if r.status >= 400 and r.body != BACKEND_BODY), None)
    if first_refusal is not None:
        forwarded_before = sum(1 for r in responses[:first_refusal] if r.body == BACKEND_BODY)
        assert len(seen) <= forwarded_before, (raw, responses, seen)
