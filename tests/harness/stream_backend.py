"""A raw HTTP/1.1 origin for big and slow transfers (the e2e tests of core limits and memory)."""
from __future__ import annotations

import socket
import threading
import time


class StreamBackend:
    """A raw HTTP/1.1 origin for big and slow transfers, recording what happened per connection.

    GET /<any>?<n>: n bytes of body (Content-Length), as fast as the proxy takes them;
    GET /drip/<any>?<n>: n bytes, one every 0.2 s. POST: reads the body (Content-Length or
    chunked) and answers with its size. `events` gets ("accept",), ("request", target),
    ("sent", n), ("body", n), ("error", repr), ("closed",) in order.
    """

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.block = memoryview(b"x" * (1 << 20))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.events.append(("accept",))
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                method, target, _ = line.split(b" ", 2)
                headers = {}
                while (h := f.readline()) not in (b"\r\n", b""):
                    name, _, value = h.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                self.events.append(("request", target))
                if method == b"POST":
                    n = self._read_body(f, headers)
                    self.events.append(("body", n))
                    body = b"%d" % n
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    self._send(c, target)
        except (OSError, ValueError) as exc:       # ValueError: a chunk size cut short
            self.events.append(("error", repr(exc)))
        finally:
            self.events.append(("closed",))
            c.close()

    @staticmethod
    def _read_body(f, headers) -> int:
        if b"content-length" in headers:
            left = int(headers[b"content-length"])
            n = left
            while left:
                data = f.read(min(left, 1 << 20))
                if not data:
                    raise ConnectionError("body cut")
                left -= len(data)
            return n
        n = 0
        while (size := int(f.readline().split(b";")[0], 16)):
            n += len(f.read(size))
            f.readline()
        f.readline()
        return n

    def _send(self, c: socket.socket, target: bytes) -> None:
        n = int(target.rsplit(b"?", 1)[1])
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
        sent = 0
        drip = target.startswith(b"/drip/")
        while sent < n:
            k = 1 if drip else min(n - sent, len(self.block))
            c.sendall(self.block[:k])
            sent += k
            if drip:
                time.sleep(0.2)
        self.events.append(("sent", sent))

    def wait_for(self, kind: str, timeout: float = 5.0) -> list[tuple]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e[0] == kind for e in self.events):
                return self.events
            time.sleep(0.05)
        raise AssertionError(f"no {kind!r} event: {self.events}")

    def close(self) -> None:
        self.sock.close()
