"""DNS messages, sans-IO, as nginx's resolver builds and checks them (src/core/ngx_resolver.c).

`name_query(name, ipv6)` makes the A (and AAAA) queries of ngx_resolver_create_name_query: a
random ident each, the recursion-desired flag, one question. `check_response(buf, tcp)` is
ngx_resolver_process_response: a standard response with one uncompressed question of class IN
and type A or AAAA, else a `DnsProblem` carrying nginx's error-log wording. `read_answers` is the
answer walk of ngx_resolver_process_a: the addresses, the last CNAME and the lowest TTL.
"""
from __future__ import annotations

import ipaddress
import random
import struct

A, CNAME, AAAA, DNAME = 1, 5, 28, 39
FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 1, 2, 3, 4, 5
TIMEDOUT = 110                  # NGX_RESOLVE_TIMEDOUT (NGX_ETIMEDOUT)
_ERRORS = ("Format error", "Server failure", "Host not found", "Unimplemented",
           "Operation refused")
_HDR = struct.Struct("!6H")
_QS = struct.Struct("!HH")
_AN = struct.Struct("!HHiH")    # type, class, ttl, rdlength (after the owner name)


def strerror(code: int) -> str:
    """ngx_resolver_strerror."""
    if 0 < code < 6:
        return _ERRORS[code - 1]
    if code == TIMEDOUT:
        return "Operation timed out"
    return "Unknown error"


class DnsProblem(Exception):
    """A response nginx drops, with the [error] line it logs."""


def encode_name(name: str) -> bytes | None:
    """`www.example.com` -> b"\\3www\\7example\\3com\\0"; None where nginx declines the name
    (empty, an empty label, a label over 255 bytes): the waiting requests get NXDOMAIN."""
    if not name:
        return None
    out = bytearray()
    for label in name.encode("latin-1", "replace").split(b"."):
        if not label or len(label) > 255:
            return None
        out.append(len(label))
        out += label
    out.append(0)
    return bytes(out)


def new_ident() -> int:
    return random.getrandbits(16)


def query(ident: int, qname: bytes, qtype: int) -> bytes:
    return _HDR.pack(ident, 0x0100, 1, 0, 0, 0) + qname + _QS.pack(qtype, 1)


class Response:
    """A checked response's header and question (ngx_resolver_process_response)."""
    __slots__ = ("ident", "code", "trunc", "qname", "qtype", "nan", "ans")

    def __init__(self, ident, code, trunc, qname, qtype, nan, ans) -> None:
        self.ident, self.code, self.trunc = ident, code, trunc
        self.qname, self.qtype, self.nan, self.ans = qname, qtype, nan, ans


class DnsError(Exception):
    """An error code in a response to no query of ours by ident, or above REFUSED:
    args (code, ident) - nginx logs "DNS error (code: text), query id:ident[, name:...]"."""


def check_response(buf: bytes, tcp: bool) -> Response:
    n = len(buf)
    if n < 12:
        raise DnsProblem("short DNS response")
    ident, flags, nqs, nan, _, _ = _HDR.unpack_from(buf)
    trunc = flags & 0x0200
    if (flags & 0xF870) != 0x8000 or (trunc and tcp):
        raise DnsProblem(f"invalid {'TCP' if tcp else 'UDP'} DNS response {ident} fl:{flags:04X}")
    code = flags & 0xF
    if code == FORMERR or code > REFUSED:
        raise DnsError(code, ident)
    if nqs != 1:
        raise DnsProblem("invalid number of questions in DNS response")
    i = 12
    while i < n:
        if buf[i] & 0xC0:
            raise DnsProblem("unexpected compression pointer in DNS response")
        if buf[i] == 0:
            break
        i += 1 + buf[i]
    else:
        raise DnsProblem("short DNS response")
    if i == 12:
        raise DnsProblem("zero-length domain name in DNS response")
    i += 1
    if i + 4 + nan * 12 > n:
        raise DnsProblem("short DNS response")
    qtype, qclass = _QS.unpack_from(buf, i)
    if qclass != 1:
        raise DnsProblem(f"unknown query class {qclass} in DNS response")
    if qtype not in (A, AAAA):
        raise DnsProblem(f"unknown query type {qtype} in DNS response")
    qname = copy_name(buf, 12)
    return Response(ident, code, trunc, qname, qtype, nan, i + 4)


def copy_name(buf: bytes, at: int) -> str:
    """ngx_resolver_copy: a (compressed) name at `at`, lower-cased, without the final dot."""
    n = len(buf)
    p = at
    labels = []
    for _ in range(128):
        if p >= n:
            raise DnsProblem("name is out of DNS response")
        length = buf[p]
        p += 1
        if length == 0:
            return ".".join(labels)
        if length & 0xC0:
            if length & 0xC0 != 0xC0:
                raise DnsProblem("invalid label type in DNS response")
            if p >= n:
                raise DnsProblem("name is out of DNS response")
            p = ((length & 0x3F) << 8) + buf[p]
        else:
            labels.append(buf[p:p + length].decode("latin-1").lower())
            p += length
        if p >= n:
            raise DnsProblem("name is out of DNS response")
    raise DnsProblem("compression pointers loop in DNS response")


def read_answers(buf: bytes, r: Response):
    """(addresses as text, the last CNAME's target offset or None, the lowest TTL or None).

    nginx's checks, in its order: an owner name that is one byte long, a record past the end,
    a class other than IN, an A record to an AAAA question (and the reverse), a wrong rdlength.
    DNAME records are skipped, other types logged ("unexpected RR type") and skipped."""
    n = len(buf)
    i = r.ans
    addrs: list[str] = []
    cname = None
    ttl_min = None
    others: list[int] = []
    for _ in range(r.nan):
        start = i
        while i < n:
            if buf[i] & 0xC0:
                i += 2
                break
            if buf[i] == 0:
                i += 1
                if i - start < 2:
                    raise DnsProblem("invalid name in DNS response")
                break
            i += 1 + buf[i]
        else:
            raise DnsProblem("short DNS response")
        if i + 10 >= n:
            raise DnsProblem("short DNS response")
        rtype, rclass, ttl, length = _AN.unpack_from(buf, i)
        if rclass != 1:
            raise DnsProblem(f"unexpected RR class {rclass} in DNS response")
        ttl = max(ttl, 0)
        ttl_min = ttl if ttl_min is None else min(ttl_min, ttl)
        i += 10
        if rtype == A or rtype == AAAA:
            size = 4 if rtype == A else 16
            kind = "A" if rtype == A else "AAAA"
            if rtype != r.qtype:
                raise DnsProblem(f"unexpected {kind} record in DNS response")
            if length != size:
                raise DnsProblem(f"invalid {kind} record in DNS response")
            if i + size > n:
                raise DnsProblem("short DNS response")
            addrs.append(str(ipaddress.ip_address(buf[i:i + size])))
        elif rtype == CNAME:
            cname = i
        elif rtype != DNAME:
            others.append(rtype)
        i += length
    return addrs, cname, ttl_min, others
