"""TLS to upstreams, nginx vs ngate on the same config: `proxy_ssl_verify` with
`proxy_ssl_verify_depth` against backend chains of 0-3 intermediates, `proxy_ssl_session_reuse`
(TLSv1.2 and TLSv1.3) and `proxy_pass https://unix:...`. The backend is an HTTPS origin in this
process, on 127.0.0.1 and on a unix socket, that picks its certificate chain by SNI and answers with
what it saw: the request target and Host, the SNI, the protocol and whether the session was
resumed. Both programs talk to the same backend; their answers are compared."""
from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.harness.backend import read_request
from tests.harness.client import build_request, exchange
from tests.harness.pki import Pki

CHAINS = {"direct.test": 0, "int1.test": 1, "int2.test": 2, "int3.test": 3}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    cas = p.chain(3)
    for name, length in CHAINS.items():
        p.leaf(name, name, issuer=cas[length - 1] if length else None)
    return p


class TlsOrigin:
    """An HTTPS origin in its own thread, on `count` ports of 127.0.0.1 (`ports`) and on the unix
    sockets `paths`. One address per location: nginx keeps a TLS session per upstream peer, a
    literal `proxy_pass` address is one peer for every location naming it, and a resumed session
    keeps the verification result of the connection that made it.

    The certificate is the chain named by SNI (CHAINS; direct.test without SNI). Each request is
    answered with `target host sni protocol reused`, then the connection is closed.
    """

    def __init__(self, pki: Pki, paths: list[Path], count: int):
        self.contexts = {name: self._context(pki, name) for name in CHAINS}
        self.front = self.contexts["direct.test"]
        self.front.sni_callback = self._servername
        self.paths = paths
        self.count = count
        self.ports: list[int] = []
        self.sni: dict[int, str | None] = {}         # id(SSLObject) -> the name it sent
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @staticmethod
    def _context(pki: Pki, name: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.path(f"{name}.crt")), str(pki.path(f"{name}.key")))
        return ctx

    def _servername(self, ssl_obj, name, _ctx) -> None:
        self.sni[id(ssl_obj)] = name
        if name in self.contexts:
            ssl_obj.context = self.contexts[name]

    def start(self) -> "TlsOrigin":
        self._thread.start()
        self.servers = [self._run(asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.front))
                        for _ in range(self.count)]
        self.ports = [server.sockets[0].getsockname()[1] for server in self.servers]
        for path in self.paths:
            self.servers.append(self._run(asyncio.start_unix_server(self._serve, str(path),
                                                                    ssl=self.front)))
            path.chmod(0o777)                  # nginx's workers run as nobody
        return self

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)

    def stop(self) -> None:
        async def close():
            for server in self.servers:
                server.close()
        self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = await read_request(reader, 0)
            if req is None:
                return
            tls = writer.get_extra_info("ssl_object")
            body = b"%s host=%s sni=%s %s reused=%s\n" % (
                req.target, req.header(b"host"), str(self.sni.get(id(tls))).encode(),
                tls.version().encode(), str(tls.session_reused).encode())
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def origin(pki):
    sock_dir = Path(tempfile.mkdtemp(prefix="ngate-tls-"))    # short, and outside 0700 pytest dirs
    sock_dir.chmod(0o755)
    paths = [sock_dir / f"origin{i}.sock" for i in range(3)]
    o = TlsOrigin(pki, paths, len(VERIFY_CASES) + len(REUSE_CASES)).start()
    yield o
    o.stop()
    shutil.rmtree(sock_dir)


def verify_location(i: int, depth: int | None, name: str) -> str:
    depth_line = f"proxy_ssl_verify_depth {depth};" if depth is not None else ""
    return f"""
        location /verify/d{depth}/{name}/ {{
            proxy_pass https://127.0.0.1:{{origin_port{i}}}/;
            proxy_ssl_name {name};
            {depth_line}
        }}"""


def reuse_location(i: int, label: str, protocol: str, reuse: str) -> str:
    return f"""
        location /reuse/{label}/ {{
            proxy_pass https://127.0.0.1:{{origin_port{i}}}/;
            proxy_ssl_protocols {protocol};
            proxy_ssl_session_reuse {reuse};
        }}"""


VERIFY_CASES = [
    # (proxy_ssl_verify_depth or None for the default 1, backend chain, nginx's status)
    (None, "direct.test", 200),
    (None, "int1.test", 200),
    (None, "int2.test", 502),              # the default allows one intermediate
    (2, "int2.test", 200),
    (2, "int3.test", 502),
    (3, "int3.test", 200),
    (0, "direct.test", 200),               # depth 0: only a certificate the root issued
    (0, "int1.test", 502),
]
REUSE_CASES = [(f"{reuse}-{protocol}", protocol, reuse)
               for protocol in ("TLSv1.2", "TLSv1.3") for reuse in ("on", "off")]

CONF = """
http {
    proxy_ssl_protocols TLSv1.2 TLSv1.3;       # nginx 1.22's default lacks TLSv1.3
    proxy_ssl_server_name on;
    server {
        listen 127.0.0.1:{port};
        location /verify/ {
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {pki}/root.pem;
            VERIFY
        }
        REUSE
        location /unix/ {
            proxy_pass https://unix:{origin_sock0}:/;
        }
        location /unix-verified/ {
            proxy_pass https://unix:{origin_sock1}:/;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {pki}/root.pem;
            proxy_ssl_name int1.test;
        }
        location /unix-plain-name/ {
            proxy_pass https://unix:{origin_sock2};
            proxy_ssl_server_name off;
        }
    }
}
""".replace("VERIFY", "".join(verify_location(i, d, n) for i, (d, n, _) in enumerate(VERIFY_CASES))
              ).replace("REUSE", "".join(reuse_location(len(VERIFY_CASES) + i, *case)
                                         for i, case in enumerate(REUSE_CASES)))


@pytest.fixture(scope="module")
def pair(differential, pki, origin):
    ports = {f"origin_port{i}": port for i, port in enumerate(origin.ports)}
    socks = {f"origin_sock{i}": path for i, path in enumerate(origin.paths)}
    return differential(CONF, backends=(), pki=pki.dir, **ports, **socks)


def get(target: str):
    def script(port):
        return exchange(port, build_request("GET", target, host=b"front.test"))[0]
    return script


def logged_during(pair, script):
    """`pair.check(script)` and what each program logged meanwhile: (outcome, {kind: text})."""
    marks = {kind: len(p.error_log()) for kind, p in pair.procs.items()}
    out = pair.check(script)
    time.sleep(0.05)
    return out, {kind: p.error_log()[marks[kind]:] for kind, p in pair.procs.items()}


# OpenSSL's verify depth counts intermediates between the leaf and the root; past it OpenSSL 3
# stops building the chain, so the error is "unable to get local issuer certificate".
@pytest.mark.parametrize("i, depth, name, status",
                         [(i, *case) for i, case in enumerate(VERIFY_CASES)])
def test_verify_depth(pair, i, depth, name, status):
    out, logs = logged_during(pair, get(f"/verify/d{depth}/{name}/x"))
    assert out.response.status == status
    if status == 200:
        port = pair.params[f"origin_port{i}"]
        expected = f"/x host=127.0.0.1:{port} sni={name} TLSv1.3 reused=False\n"
        assert out.response.body == expected.encode()
    else:
        assert b"<title>502 Bad Gateway</title>" in out.response.body
        for kind, text in logs.items():
            assert ("upstream SSL certificate verify error: (20:unable to get local issuer "
                    "certificate) while SSL handshaking to upstream") in text, kind


@pytest.mark.parametrize("label, protocol, reuse", REUSE_CASES)
def test_session_reuse(pair, label, protocol, reuse):
    """Three requests, each on a new upstream connection (no keepalive): with reuse on, the
    second and third offer the session of an earlier one."""
    def script(port):
        return [exchange(port, build_request("GET", f"/reuse/{label}/{i}", host=b"h.test"))[0]
                for i in range(3)]
    out = pair.check(script)
    reused = [r.body.rsplit(b"reused=", 1)[1].strip() for r in out.result]
    assert all(r.status == 200 and protocol.encode() in r.body for r in out.result)
    assert reused == ([b"False", b"True", b"True"] if reuse == "on" else [b"False"] * 3)


# With `proxy_ssl_server_name on` and no proxy_ssl_name, nginx sends the socket's path as SNI.
@pytest.mark.parametrize("target, body", [
    ("/unix/a?b=c", "/a?b=c host=localhost sni={sock0} TLSv1.3 reused=False\n"),
    ("/unix-verified/v", "/v host=localhost sni=int1.test TLSv1.3 reused=False\n"),
    ("/unix-plain-name/p", "/unix-plain-name/p host=localhost sni=None TLSv1.3 reused=False\n"),
])
def test_https_to_unix_socket(pair, origin, target, body):
    out = pair.check(get(target))
    assert out.response.status == 200
    assert out.response.body == body.format(sock0=origin.paths[0]).encode()
