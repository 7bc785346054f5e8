"""Instructions per request of the in-process benches, under callgrind: `python -m bench.hotcg
KIND [-n N]` (KIND: h2 = bench/h2hotpath.py's `return`, h2proxy, return, static, proxy = bench/
hotpath.py's, close = `return` with a new connection per request, ws = a proxied WebSocket
handshake per round (bench/hotpath.py's --close and --ws), fastcgi = hotpath.py's --fastcgi
(fastcgi_keep_conn, php-fpm's answer fed back), https = bench/tlshot.py's `return` over
TLS, https-big the same with a browser-sized head (a 700-byte Cookie)). The bench's timed loop
is bracketed by os.getppid() and os.getpgrp() (its time.process_time() calls, patched), and
valgrind zeroes the counters before the first and
dumps them before the second: the dump's total / N is what the loop cost, setup and
interpreter start excluded. Instruction counts do not move with the shared machine's load (the
process times do): a cut of 1% shows. PYTHONHASHSEED=0 for repeatable dict layouts.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def _child(kind: str, n: int) -> None:
    real = time.process_time
    inside = [False]

    def marker() -> float:
        inside[0] = not inside[0]
        os.getppid() if inside[0] else os.getpgrp()
        return real()
    time.process_time = marker
    from bench import h2hotpath, hotpath, tlshot
    {"h2": lambda: h2hotpath.run_return(n), "h2proxy": lambda: h2hotpath.run_proxy(n),
     "return": lambda: hotpath.run_return(n), "static": lambda: hotpath.run_static(n),
     "proxy": lambda: hotpath.run(n, False, False, 0), "https": lambda: tlshot.run_https(n),
     "https-big": lambda: tlshot.run_https(n, 700), "close": lambda: hotpath.run_return(n, True),
     "ws": lambda: hotpath.run_ws(n), "fastcgi": lambda: hotpath.run_fastcgi(n)}[kind]()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("h2", "h2proxy", "return", "static", "proxy", "https",
                                       "https-big", "close", "ws", "fastcgi"))
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args.kind, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg")
        subprocess.run(["valgrind", "--tool=callgrind", "--zero-before=os_getppid*",
                        "--dump-before=os_getpgrp*", f"--callgrind-out-file={out}",
                        sys.executable, "-m", "bench.hotcg", args.kind, "-n", str(args.n),
                        "--child"], check=True, capture_output=True,
                       env=dict(os.environ, PYTHONHASHSEED="0"))
        with open(out + ".1") as f:
            total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    print(f"{args.kind}: {total / args.n:.0f} instructions per request")


if __name__ == "__main__":
    main()
