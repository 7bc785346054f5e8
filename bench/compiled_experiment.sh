#!/usr/bin/env bash
# Issue 16's compiled-build experiment (bench/PROFILE.md, "Session 7 (compiled)"): builds four
# compiled variants of this checkout's HEAD in /tmp and compares `python -m bench.hotpath`
# (proxied, --return, --static) with the pure tree, alternated, medians.
# Needs: pip install mypy cython; a C compiler. Usage: bench/compiled_experiment.sh [alternations]
# Variants:
#   cy-untyped  Cython, the unchanged .py of the 19 modules `bench.profile hotpath` names
#   cy-typed    Cython + .pxd: the exchange chain (response_head, exchange_base, exchange_peer,
#               exchange_request, exchange) and RequestContext as cdef classes (typed self,
#               ExchangeBase.ctx typed RequestContext)
#   mypyc-ctx   mypyc: RequestContext alone, a native class (slots -> annotated attributes)
#   mypyc-7     mypyc: RequestContext + the hot modules mypy accepts as they are (known_head,
#               phases, wire_http1, driver, pool, respond)
#   mypyc-7t    mypyc-7 with `ctx: RequestContext` on the 45 functions of phases, driver and
#               respond that take ctx first (native attribute access there)
# MICRO=1 also times one attribute read/write and a method call on a __slots__ class, a mypyc
# native class and a Cython cdef class, from interpreted code and from their own compiled module.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ALT=${1:-3}
OUT=${OUT:-/tmp/compiled-exp}
HOT="ngate/proxy/known_head.py ngate/server/request_head.py ngate/proxy/exchange_peer.py
ngate/proxy/exchange_request.py ngate/http/phases.py ngate/proxy/wire_http1.py ngate/proxy/exchange.py
ngate/proxy/exchange_base.py ngate/http/context.py ngate/proxy/proxy_request.py ngate/http/driver.py
ngate/server/framing.py ngate/upstream/pool.py ngate/server/lifecycle.py ngate/http/respond.py
ngate/server/sending.py ngate/routing/locations.py ngate/server/connection.py ngate/server/clock.py"
# (proxy/http_proxy.py is not compiled: http/driver.py tells a content handler by
# `cls is FunctionType`, which a compiled function is not)

tree() {    # a fresh copy of HEAD
    rm -rf "$OUT/$1"; mkdir -p "$OUT/$1"; git archive HEAD | tar -x -C "$OUT/$1"
}

annotate_ctx() {    # RequestContext for mypyc: its slots as annotated attributes
    python - <<'PY'
from ngate.http.context import RequestContext
src = open("ngate/http/context.py").read()
ints = {"http_minor", "request_length", "status", "body_bytes_sent", "bytes_sent", "redirects"}
bools = {"keep_alive", "internal", "body_chunked", "logged", "error_pages_done", "add_uri_to_alias",
         "head_sent", "pipelined", "stat_writing", "expect_tested"}
decl = "".join(f"    {s}: {'int' if s in ints else 'bool' if s in bools else 'Any'}\n"
               for s in RequestContext.__slots__)
start, end = src.index("    __slots__ = ("), src.index("    def __init__")
src = src[:start] + decl + "\n" + src[end:]
src = src.replace("import time\n", "import time\nfrom typing import Any\n", 1)
src = src.replace("self.start = time.monotonic()", "self.start: Any = time.monotonic()")
open("ngate/http/context.py", "w").write(src)
PY
}

build() {
    tree cy-untyped
    (cd "$OUT/cy-untyped" && cythonize -q -i -j 2 -3 $HOT >/dev/null)

    tree cy-typed
    (cd "$OUT/cy-typed" && python - <<'PY'
from ngate.http.context import RequestContext
from ngate.proxy.exchange_base import ExchangeBase
def w(p, s): open(p, "w").write(s)
w("ngate/http/context.pxd", "cdef class RequestContext:\n"
  + "".join(f"    cdef public object {s}\n" for s in RequestContext.__slots__))
w("ngate/proxy/response_head.pxd", "cdef class HeadTranslation:\n    pass\n")
w("ngate/proxy/exchange_base.pxd", "from ngate.http.context cimport RequestContext\n"
  "from ngate.proxy.response_head cimport HeadTranslation\n\n"
  "cdef class ExchangeBase(HeadTranslation):\n"
  + "".join(f"    cdef public {'RequestContext' if s == 'ctx' else 'object'} {s}\n"
            for s in ExchangeBase.__slots__))
for mod, cls, base, basemod in (("exchange_peer", "PeerSide", "ExchangeBase", "exchange_base"),
                                ("exchange_request", "RequestSide", "PeerSide", "exchange_peer"),
                                ("exchange", "UpstreamExchange", "RequestSide", "exchange_request")):
    w(f"ngate/proxy/{mod}.pxd", f"from ngate.proxy.{basemod} cimport {base}\n\n"
      f"cdef class {cls}({base}):\n    pass\n")
PY
     cythonize -q -i -j 2 -3 ngate/http/context.py ngate/proxy/response_head.py \
        ngate/proxy/exchange_base.py ngate/proxy/exchange_peer.py ngate/proxy/exchange_request.py \
        ngate/proxy/exchange.py >/dev/null)

    tree mypyc-ctx
    (cd "$OUT/mypyc-ctx" && annotate_ctx && mypyc ngate/http/context.py >/dev/null)

    tree mypyc-7
    (cd "$OUT/mypyc-7" && annotate_ctx && python - <<'PY'
p = "ngate/proxy/wire_http1.py"
s = open(p).read()
# cache/wire_http1.py's CacheWire subclasses Http1Wire (interpreted subclass of a native class)
s = s.replace("class Http1Wire:", "from mypy_extensions import mypyc_attr\n\n\n"
              "@mypyc_attr(allow_interpreted_subclasses=True)\nclass Http1Wire:", 1)
# `known_response = known_head.known_response` binds as a method only as a Python function
s = s.replace("return self.known_response(ex, u, data, end, known)",
              "return known_head.known_response(self, ex, u, data, end, known)")
open(p, "w").write(s)
PY
     mypyc ngate/http/context.py ngate/proxy/known_head.py ngate/http/phases.py \
        ngate/proxy/wire_http1.py ngate/http/driver.py ngate/upstream/pool.py \
        ngate/http/respond.py >/dev/null)

    rm -rf "$OUT/mypyc-7t"; cp -r "$OUT/mypyc-7" "$OUT/mypyc-7t"
    (cd "$OUT/mypyc-7t" && rm -rf build ./*.so ngate/*/*.so && python - <<'PY'
import re
for p in ("ngate/http/phases.py", "ngate/http/driver.py", "ngate/http/respond.py"):
    s = re.sub(r"def ([a-z_]+)\(ctx([,)])", r"def \1(ctx: RequestContext\2", open(p).read())
    if "from ngate.http.context import RequestContext" not in s:
        s = s.replace("from __future__ import annotations\n", "from __future__ import annotations\n"
                      "from ngate.http.context import RequestContext\n", 1)
    open(p, "w").write(s)
PY
     mypyc ngate/http/context.py ngate/proxy/known_head.py ngate/http/phases.py \
        ngate/proxy/wire_http1.py ngate/http/driver.py ngate/upstream/pool.py \
        ngate/http/respond.py >/dev/null)
}

micro() {
    rm -rf "$OUT/micro"; mkdir -p "$OUT/micro"; cd "$OUT/micro"
    cat > slotc.py <<'PY'
class S:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1
        self.b = None

    def m(self, x):
        self.b = x
        return self.a


def loop(o, n):
    for _ in range(n):
        o.m(o.b); o.a; o.b
PY
    cat > nat.py <<'PY'
from typing import Any


class N:
    a: int
    b: Any

    def __init__(self) -> None:
        self.a = 1
        self.b = None

    def m(self, x: Any) -> int:
        self.b = x
        return self.a


def loop(o: N, n: int) -> None:
    for _ in range(n):
        o.m(o.b); o.a; o.b
PY
    sed 's/class S/class C/' slotc.py > cyc.py
    printf 'cdef class C:\n    cdef public int a\n    cdef public object b\n    cpdef int m(self, x)\n\ncpdef loop(C o, int n)\n' > cyc.pxd
    mypyc nat.py >/dev/null; cythonize -q -i -3 cyc.py >/dev/null
    python - <<'PY'
import timeit
import cyc, nat, slotc
n = 100000
for name, mod, k in (("__slots__ class", slotc, slotc.S), ("mypyc native", nat, nat.N),
                     ("Cython cdef", cyc, cyc.C)):
    o = k()
    def reads(o=o):
        for _ in range(n):
            o.a; o.b; o.a; o.b; o.a
    def calls(o=o):
        for _ in range(n):
            o.m(o.b); o.a; o.b
    r = min(timeit.repeat(reads, number=1, repeat=7)) / n / 5 * 1e9
    i = min(timeit.repeat(calls, number=1, repeat=7)) / n * 1e9
    c = min(timeit.repeat(lambda: mod.loop(o, n), number=1, repeat=7)) / n * 1e9
    print(f"{name:16s} read from interpreted code {r:5.1f} ns; call + 4 attribute ops: "
          f"from interpreted code {i:5.1f} ns, in its own module {c:5.1f} ns")
PY
    cd - >/dev/null
}

[ "${SKIP_BUILD:-}" ] || build
[ "${MICRO:-}" ] && micro
uptime
for mode in "" --return --static; do
    for i in $(seq "$ALT"); do
        for v in pure cy-untyped cy-typed mypyc-ctx mypyc-7 mypyc-7t; do
            d="$OUT/$v"; [ "$v" = pure ] && d="$ROOT"
            r=$(cd "$d" && python -m bench.hotpath -n 20000 --rounds 3 $mode 2>&1 | tail -1)
            echo "${mode:-proxied} $v ${r#*: }"
        done
    done
done
uptime
