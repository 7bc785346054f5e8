"""The server's cost of one HTTPS keep-alive `return 200` request, in process:
`python -m bench.tlshot` (and `python -m bench.hotcg https` for instructions).

A socketpair on a real uvloop loop: one end is the server's, through ngate's own TLS path
(the front context of a `listen ... ssl` socket, the handshake on the raw socket, then
server/tls_transport.py TlsTransport and server/https.py HttpsConnection); the other end is the
client, which only moves bytes. The client's requests are encrypted before the timed loop (an
SSLObject on memory BIOs, TLSv1.3): per request the client sends one record with a plain
send(), the server's readable event is called as the loop would call it (TlsTransport's read
callback: SSL_read on the socket, the HTTP parse, the request, SSL_write at the turn's end),
and the client takes the encrypted response off the socket without decrypting it. So the
figure is the server's part alone: ngate's TLS glue, OpenSSL's record work and the request's
Python, with the socket syscalls (not epoll's: the loop is not polled per request).
"""
from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import tempfile
import time

from bench.hotpath import REQUEST, _runtime

CONF = """
events {}
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:8443 ssl;
        ssl_certificate %(dir)s/cert.pem;
        ssl_certificate_key %(dir)s/key.pem;
        ssl_protocols TLSv1.3;
        location / { return 200 "ok\\n"; }
    }
}
"""


def _certs(prefix: str) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", prefix + "/key.pem",
                    "-out", prefix + "/cert.pem", "-days", "30", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)


def _client_handshake(raw: socket.socket, server_step) -> tuple:
    """A TLSv1.3 client on memory BIOs over `raw`, handshaken against the server (whose
    handshake step `server_step()` is called until both are done): (sslobj, outgoing BIO)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    done = server = False
    for _ in range(100):
        if not done:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                pass
        data = out.read()
        if data:
            raw.sendall(data)
        if not server:
            server = server_step()
        try:
            got = raw.recv(65536)
            inc.write(got)
        except BlockingIOError:
            pass
        if done and server:
            return obj, inc, out
    raise RuntimeError("no handshake")


def run_https(n: int, pad: int = 0) -> float:
    """`return 200` over TLS on one keep-alive connection, the server's part per request (us);
    `pad`: a Cookie header of that many bytes makes the head a browser's size."""
    from ngate.server.https import https_connection
    from ngate.server.tls_sni import AcceptedSSLObject
    from ngate.server.tls_transport import TlsTransport

    with tempfile.TemporaryDirectory() as prefix:
        _certs(prefix)
        _config, loop, runtime, listen = _runtime(prefix, CONF % {"dir": prefix})
        srv, cli = socket.socketpair()
        srv.setblocking(False)
        cli.setblocking(False)
        obj = AcceptedSSLObject.__new__(AcceptedSSLObject)
        obj.ngate_acceptor = None
        obj._sslobj = listen.ssl_context.context._wrap_socket(srv, server_side=True, owner=obj)

        def server_step() -> bool:
            try:
                obj._sslobj.do_handshake()
                return True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False

        client, inc, out = _client_handshake(cli, server_step)
        request = REQUEST[:-2] + b"Cookie: " + b"c" * pad + b"\r\n\r\n" if pad else REQUEST
        records = []
        for _ in range(n + 100):
            client.write(request)
            records.append(out.read())

        async def drive() -> float:
            conn = https_connection(listen)(runtime, listen)
            transport = TlsTransport(loop, srv, obj, ("127.0.0.1", 40000))
            transport.start(conn)
            ready = transport._read_ready
            flush = runtime.client_writes.flush
            send, recv = cli.send, cli.recv
            try:
                while True:                 # the session tickets
                    inc.write(recv(65536))
            except BlockingIOError:
                pass
            for i in range(100):            # warm-up: its responses are decrypted and checked
                send(records[i])
                ready()
                flush()
                inc.write(recv(65536))
            answers = b""
            try:
                while True:
                    answers += client.read(65536)
            except ssl.SSLWantReadError:
                pass
            assert answers.count(b"HTTP/1.1 200 OK\r\n") == 100 and answers.endswith(b"\r\nok\n")
            got = 0
            t0 = time.process_time()
            for i in range(100, n + 100):
                send(records[i])
                ready()
                flush()
                got = len(recv(65536))
            elapsed = time.process_time() - t0
            assert got > 100 and conn.requests == n + 100 and not conn.closing, (got, conn.requests)
            transport.abort()
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        cli.close()
        return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pad", type=int, default=0, help="a Cookie header of PAD bytes")
    args = ap.parse_args()
    figures = sorted(run_https(args.n, args.pad) for _ in range(args.rounds))
    print(f"https return: {figures[len(figures) // 2]:.2f} us per request (median of "
          f"{args.rounds} x {args.n}; min {figures[0]:.2f})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
