"""Run the same requests through nginx and ngate and compare what the client and backends saw.

`Differential(conf, base_dir, backends=("backend",))` starts the named recording backends
(`{backend_port}`, `{backend2_port}` ... in the config; `{dead_port}` is a port nothing listens on)
and one nginx and one ngate on the config (`{port}`, `{port2}` ... differ per program).
`check(script)` runs `script(port)` against each program, then compares the client-side results and
the requests each backend received, after normalising only what differs by design:
the Date value, the Server value (and the server signature in error pages), and listening ports.
The environment variable DIFF_KINDS (default "nginx,ngate") selects the programs; "nginx" alone
checks the tests themselves against the reference.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .backend import Backend, RecordedRequest
from .client import Response, build_request, exchange
from .processes import ProxyProcess, fresh_prefix, free_port, require_kind

SIGNATURE_RE = re.compile(rb"<hr><center>[^<]*</center>")


def kinds() -> list[str]:
    return [k.strip() for k in os.environ.get("DIFF_KINDS", "nginx,ngate").split(",") if k.strip()]


@dataclass
class Outcome:
    kind: str
    port: int
    result: Any
    seen: dict[str, list[RecordedRequest]] = field(default_factory=dict)
    error_log: str = ""        # what the program logged during the run

    @property
    def response(self) -> Response:
        """The single (or first) response of the result."""
        r = self.result
        return r if isinstance(r, Response) else r[0]

    def requests(self, backend: str = "backend") -> list[RecordedRequest]:
        return self.seen[backend]


class Differential:
    def __init__(self, conf: str, base_dir: Path, backends: tuple[str, ...] = ("backend",),
                 **params):
        self.conf = conf
        self.base_dir = Path(base_dir)
        self.backends = {name: Backend(name) for name in backends}
        self.params = params
        self.procs: dict[str, ProxyProcess] = {}

    def start(self) -> "Differential":
        for b in self.backends.values():
            b.start()
        params = {f"{name}_port": b.port for name, b in self.backends.items()}
        params["dead_port"] = free_port()
        params.update(self.params)
        port_keys = set(re.findall(r"\{(port\d*)\}", self.conf))
        try:
            for kind in kinds():
                require_kind(kind)
                ports = {key: free_port() for key in port_keys}
                self.procs[kind] = ProxyProcess(kind, self.conf, fresh_prefix(self.base_dir, kind),
                                                **params, **ports).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        for b in self.backends.values():
            b.stop()

    @property
    def backend(self) -> Backend:
        return next(iter(self.backends.values()))

    # ------------------------------------------------------------ running
    def run(self, kind: str, script: Callable[[int], Any]) -> Outcome:
        proc = self.procs[kind]
        marks = {name: b.mark() for name, b in self.backends.items()}
        log_mark = len(proc.error_log())
        result = script(proc.port)
        seen = {name: b.since(marks[name]) for name, b in self.backends.items()}
        return Outcome(kind, proc.port, result, seen, proc.error_log()[log_mark:])

    def check(self, script: Callable[[int], Any]) -> Outcome:
        """Run `script` on every program; assert equal normalised views; return nginx's outcome."""
        outcomes = [self.run(kind, script) for kind in self.procs]
        views = [self.view(o) for o in outcomes]
        ref = outcomes[0].kind
        for o, v in zip(outcomes[1:], views[1:]):
            if v != views[0]:
                diff = difflib.unified_diff(views[0].splitlines(), v.splitlines(), ref, o.kind,
                                            lineterm="", n=2)
                logs = "".join(f"\n--- {x.kind} error log during the run:\n{x.error_log[-3000:]}"
                               for x in outcomes)
                raise AssertionError(f"{o.kind} differs from {ref}:\n" + "\n".join(diff) + logs)
        return outcomes[0]

    def check_raw(self, raw: bytes, method: str = "GET", count: int = 1) -> Outcome:
        return self.check(lambda port: exchange(port, raw, method=method, count=count))

    def check_request(self, method: str = "GET", target: str = "/", **kw) -> Outcome:
        return self.check_raw(build_request(method, target, **kw), method=method)

    # ------------------------------------------------------------ normalising
    def view(self, outcome: Outcome) -> str:
        ports = {str(p).encode() for k, p in self.procs[outcome.kind].params.items()
                 if re.fullmatch(r"port\d*", k)}
        lines = render_result(outcome.result, ports)
        for name, requests in outcome.seen.items():
            lines += render_requests(name, requests)
        return "\n".join(lines)


def normalise_ports(value: bytes, ports: set[bytes]) -> bytes:
    for p in ports:
        value = re.sub(rb"(?<!\d)" + p + rb"(?!\d)", b"{port}", value)
    return value


def signature_delta(resp: Response) -> int:
    """How much a proxy's own page shrinks when its signature (the Server value) becomes SERVER.

    Needed where the page itself is absent: answers to HEAD keep the Content-Length of the page.
    """
    is_own_page = (resp.status >= 300 and resp.framing == "none" and resp.status != 304
                   and (resp.header("content-type") or b"").startswith(b"text/html"))
    server = resp.header("server")
    return len(b"SERVER") - len(server) if is_own_page and server else 0


def render_response(resp: Response, ports: set[bytes], label: str) -> list[str]:
    body = normalise_ports(SIGNATURE_RE.sub(b"<hr><center>SERVER</center>", resp.body), ports)
    length_delta = len(body) - len(resp.body) if body != resp.body else signature_delta(resp)
    lines = [f"{label}: {resp.status_line!r}"]
    lines += [f"  interim: {i.status_line!r} {i.headers!r}" for i in resp.interim]
    for name, value in resp.headers:
        lname = name.lower()
        if lname == b"date":
            value = b"<date>"
        elif lname == b"server":
            value = b"<server>"
        elif lname == b"content-length" and length_delta:
            value = b"%d" % (int(value) + length_delta)
        lines.append(f"  {name!r}: {normalise_ports(value, ports)!r}")
    lines.append(f"  framing: {resp.framing}")
    lines.append(f"  body: {body!r}")
    lines += [f"  trailer: {t!r}" for t in resp.trailers]
    return lines


def render_result(result: Any, ports: set[bytes], label: str = "result") -> list[str]:
    if isinstance(result, Response):
        return render_response(result, ports, label)
    if isinstance(result, (list, tuple)):
        return [line for i, r in enumerate(result) for line in render_result(r, ports, f"{label}[{i}]")]
    return [f"{label}: {result!r}"]


def render_requests(backend: str, requests: list[RecordedRequest]) -> list[str]:
    conn_ids: dict[int, int] = {}
    lines = [f"{backend} received {len(requests)} request(s)"]
    for i, req in enumerate(requests):
        conn = conn_ids.setdefault(req.connection, len(conn_ids))
        lines.append(f"{backend}[{i}] on connection #{conn}: "
                     f"{req.method!r} {req.target!r} {req.version!r}")
        lines += [f"  {n!r}: {v!r}" for n, v in req.headers]
        lines.append(f"  body: {req.body!r} chunked={req.chunked}")
    return lines


def config_test_said(prefix: Path, http: str) -> dict:
    """`-t` of nginx and of ngate on `events {} http { <http> }` in `prefix`: per kind, the exit
    code and the [emerg] lines without their time and pid (what tests compare word for word)."""
    import subprocess
    import sys
    from .processes import NGINX_BIN, REPO_ROOT
    require_kind("nginx")
    (prefix / "logs").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"events {{}}\nhttp {{\n{http}\n}}\n")
    said = {}
    for kind, exe in (("nginx", [NGINX_BIN]), ("ngate", [sys.executable, "-m", "ngate"])):
        out = subprocess.run([*exe, "-t", "-p", f"{prefix}/", "-c", str(conf)],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
        said[kind] = (out.returncode, [re.sub(r"^.*\[emerg\] (\d+#\d+: )?", "", line)
                                       for line in out.stderr.splitlines() if "[emerg]" in line])
    return said
