"""A scripted FastCGI server for tests: records what it receives (connections, BEGIN_REQUEST
flags, params, stdin) and answers as its `answer(conn, req)` says."""
import socket
import struct
import threading

from ngate.fastcgi import records as fcgi

HEADER = struct.Struct(">BBHHBx")


class FakeFastCGI:
    """Accepts connections; per request, collects records until the empty STDIN, then runs
    `self.answer(conn, req)`. Keeps a connection open while the client asked KEEP_CONN."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = []          # dicts: flags, params, stdin
        self.sent = 0               # STDOUT bytes written (backpressure test)
        self.answer = self.ok
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        buf = b""
        while len(buf) < n:
            part = conn.recv(n - len(buf))
            if not part:
                raise EOFError
            buf += part
        return buf

    def _serve(self, conn):
        with conn:
            try:
                while True:
                    req = {"flags": None, "params": b"", "stdin": b""}
                    while True:
                        _, rtype, _, n, pad = HEADER.unpack(self._read(conn, 8))
                        content = self._read(conn, n + pad)[:n]
                        if rtype == fcgi.BEGIN_REQUEST:
                            req["flags"] = content[2]
                        elif rtype == fcgi.PARAMS:
                            req["params"] += content
                        elif rtype == fcgi.STDIN:
                            if not content:
                                break
                            req["stdin"] += content
                    req["params"] = fcgi.decode_params(req["params"])
                    self.requests.append(req)
                    self.answer(conn, req)
                    if not req["flags"] & fcgi.KEEP_CONN:
                        return
            except (EOFError, OSError):
                return

    @staticmethod
    def end(conn):
        conn.sendall(fcgi.record(fcgi.END_REQUEST, struct.pack(">IB3x", 0, 0)))

    def ok(self, conn, req):
        conn.sendall(fcgi.record(fcgi.STDOUT, b"Content-Type: text/plain\r\n\r\nok\n")
                     + fcgi.record(fcgi.STDOUT))
        self.end(conn)

    def close(self):
        self.stop.set()
        self.sock.close()
