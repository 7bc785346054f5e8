"""A tiny scripted DNS server on 127.0.0.1 (UDP, and TCP on the same port), for resolver tests.

`DnsServer()` runs in a daemon thread; `zone[name] = rule` scripts the answers, where a rule is
an `Answer` or a callable `(qtype, count) -> Answer | None` (count: how many queries for this
name and type so far, from 1). None or `Answer(drop=True)` sends nothing (a timeout). Every query
is recorded in `queries` as (name, qtype, "udp"|"tcp"). A name without a rule gets NXDOMAIN.

    Answer(a=["127.0.0.1"], aaaa=["::1"], cname="alias.test", ttl=3600, rcode=0, tc=False)

`a`/`aaaa` answer only the matching question type; `cname` is put before them in both;
`tc=True` sets the truncation flag on UDP (TCP then gets the full answer); `wrong_id` answers
with another ident; `delay` holds a UDP answer back that many seconds.
"""
from __future__ import annotations

import ipaddress
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field

A, CNAME, AAAA = 1, 5, 28


@dataclass
class Answer:
    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    cname: str | None = None
    ttl: int = 3600
    rcode: int = 0
    tc: bool = False
    drop: bool = False
    wrong_id: bool = False
    delay: float = 0.0          # seconds before a UDP answer goes out (the server goes on)


def encode_name(name: str) -> bytes:
    out = b""
    for label in filter(None, name.split(".")):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def parse_question(data: bytes) -> tuple[int, str, int, int]:
    ident = struct.unpack_from("!H", data)[0]
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode())
        i += 1 + data[i]
    qtype, _ = struct.unpack_from("!HH", data, i + 1)
    return ident, ".".join(labels), qtype, i + 5


def build_answer(query: bytes, ans: Answer, tcp: bool) -> bytes:
    ident, name, qtype, end = parse_question(query)
    if ans.wrong_id:
        ident = (ident + 1) & 0xFFFF
    records = []
    if ans.rcode == 0:
        if ans.cname:
            rdata = encode_name(ans.cname)
            records.append(b"\xc0\x0c" + struct.pack("!HHIH", CNAME, 1, ans.ttl, len(rdata)) + rdata)
        owner = encode_name(ans.cname) if ans.cname else b"\xc0\x0c"
        for addr in (ans.a if qtype == A else ans.aaaa if qtype == AAAA else []):
            raw = ipaddress.ip_address(addr).packed
            records.append(owner + struct.pack("!HHIH", qtype, 1, ans.ttl, len(raw)) + raw)
    flags = 0x8180 | ans.rcode | (0x0200 if ans.tc and not tcp else 0)
    return struct.pack("!6H", ident, flags, 1, len(records), 0, 0) + query[12:end] + b"".join(records)


class DnsServer:
    def __init__(self) -> None:
        self.zone: dict = {}
        self.queries: list[tuple[str, int, str]] = []
        self.counts: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.udp, self.tcp = _bind_pair()
        self.port = self.udp.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "DnsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.udp.close()
        self.tcp.close()

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def asked(self, name: str, qtype: int = A) -> int:
        with self.lock:
            return sum(1 for n, t, _ in self.queries if n == name and t == qtype)

    def _reply(self, query: bytes, proto: str):
        """(answer bytes or None, delay)."""
        try:
            _, name, qtype, _ = parse_question(query)
        except (IndexError, struct.error, UnicodeDecodeError):
            return None
        with self.lock:
            self.queries.append((name, qtype, proto))
            key = (name, qtype)
            count = self.counts[key] = self.counts.get(key, 0) + 1
        rule = self.zone.get(name, Answer(rcode=3))
        ans = rule(qtype, count) if callable(rule) else rule
        if ans is None or ans.drop:
            return None, 0.0
        return build_answer(query, ans, proto == "tcp"), ans.delay

    def _send_late(self, out: bytes, peer) -> None:
        if not self.stopping:
            try:
                self.udp.sendto(out, peer)
            except OSError:
                pass

    def _run(self) -> None:
        sel = self.sel
        sel.register(self.udp, selectors.EVENT_READ, "udp")
        sel.register(self.tcp, selectors.EVENT_READ, "listen")
        buffers: dict = {}
        while not self.stopping:
            for key, _ in sel.select(0.1):
                sock, kind = key.fileobj, key.data
                if kind == "udp":
                    data, peer = sock.recvfrom(65535)
                    out, delay = self._reply(data, "udp")
                    if out is not None and delay:
                        threading.Timer(delay, self._send_late, (out, peer)).start()
                    elif out is not None:
                        sock.sendto(out, peer)
                elif kind == "listen":
                    conn, _ = sock.accept()
                    buffers[conn] = b""
                    sel.register(conn, selectors.EVENT_READ, "tcp")
                else:
                    data = sock.recv(65535)
                    if not data:
                        sel.unregister(sock)
                        sock.close()
                        buffers.pop(sock, None)
                        continue
                    buf = buffers[sock] + data
                    while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                        n = int.from_bytes(buf[:2], "big")
                        out, _ = self._reply(buf[2:2 + n], "tcp")
                        buf = buf[2 + n:]
                        if out is not None:
                            sock.sendall(len(out).to_bytes(2, "big") + out)
                    buffers[sock] = buf
        for sock in list(buffers):
            sock.close()
        sel.close()


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same free port of 127.0.0.1."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp
    raise RuntimeError("no free port for both UDP and TCP")
