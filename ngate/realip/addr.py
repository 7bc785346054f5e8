"""Addresses as nginx's core reads them (src/core/ngx_inet.c), for realip, geo and PROXY.

An address is `(family, value)`: family 4 or 6 with the address as an int, or `(0, 0)` for a
unix socket. A CIDR is `(family, network, mask)`. Text comes out as nginx's ngx_sock_ntop
writes it (IPv6 compressed, lower case).
"""
from __future__ import annotations

import socket

UNIX = (0, 0)
_V4_MAPPED = 0xFFFF << 32
_V6_ALL = (1 << 128) - 1


def inet_addr(text: str) -> int | None:
    """ngx_inet_addr: a dotted quad ("1..2.3" and leading zeros are fine, as in nginx)."""
    addr = octet = dots = 0
    if not text:
        return None
    for ch in text:
        if "0" <= ch <= "9":
            octet = octet * 10 + (ord(ch) - 48)
            if octet > 255:
                return None
        elif ch == "." and dots < 3:
            addr = (addr << 8) + octet
            octet = 0
            dots += 1
        else:
            return None
    if dots != 3:
        return None
    return (addr << 8) + octet


def inet6_addr(text: str) -> int | None:
    if not text or "%" in text:
        return None
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):
        return None


def parse_addr(text: str):
    """ngx_parse_addr: an IPv4 or IPv6 address (no port, no brackets), or None."""
    v4 = inet_addr(text)
    if v4 is not None:
        return (4, v4)
    v6 = inet6_addr(text)
    if v6 is not None:
        return (6, v6)
    return None


def parse_addr_port(text: str):
    """ngx_parse_addr_port: "addr", "addr:port" or "[v6]:port" -> (addr, port or 0), or None."""
    a = parse_addr(text)
    if a is not None:
        return a, 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end == len(text) - 1 or text[end + 1] != ":":
            return None
        host, port = text[1:end], text[end + 2:]
    else:
        host, sep, port = text.partition(":")
        if not sep:
            return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    a = parse_addr(host)
    return (a, int(port)) if a is not None else None


def ptocidr(text: str):
    """ngx_ptocidr -> ((family, net, mask), exact) or None; `exact` False when the address had
    bits under the mask set ("low address bits of ... are meaningless")."""
    addr_text, slash, bits = text.partition("/")
    a = parse_addr(addr_text)
    if a is None:
        return None
    family, value = a
    width = 32 if family == 4 else 128
    if not slash:
        return (family, value, (1 << width) - 1), True
    if not bits.isdigit() or int(bits) > width:
        return None
    n = int(bits)
    mask = ((1 << n) - 1) << (width - n)
    return (family, value & mask, mask), value & mask == value


def from_text(text: str):
    """The connection's address text ($remote_addr) as an address."""
    if text == "unix:":
        return UNIX
    return parse_addr(text) or UNIX


def to_text(addr) -> str:
    family, value = addr
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    return "unix:"


def unmapped(addr):
    """An IPv4-mapped IPv6 address as the IPv4 one (ngx_cidr_match, geo)."""
    if addr[0] == 6 and addr[1] >> 32 == 0xFFFF:
        return (4, addr[1] & 0xFFFFFFFF)
    return addr


def cidr_match(addr, cidrs) -> bool:
    """ngx_cidr_match: is addr in one of cidrs (unix: matches a unix-socket client)."""
    family, value = unmapped(addr)
    for cf, net, mask in cidrs:
        if cf == family and value & mask == net:
            return True
    return False


DECLINED, DONE, OK = 0, 1, 2


def forwarded_addr(addr, values, proxies, recursive: bool):
    """ngx_http_get_forwarded_addr over header values (every X-Forwarded-For line, walked from
    the last one): -> (addr, port) of the client (port 0: none given), or None: unchanged."""
    state = (addr, 0)
    rc = DECLINED
    found = False
    for value in reversed(values):
        rc, state = _forwarded_one(state, value, proxies, recursive)
        if not recursive:
            break
        if rc == DECLINED and found:
            rc = DONE
            break
        if rc != OK:
            break
        found = True
    return None if rc == DECLINED else state


def _forwarded_one(state, xff: str, proxies, recursive: bool):
    """ngx_http_get_forwarded_addr_internal: trusted addresses are replaced by the address
    before them, from the end of the value. -> (DECLINED | DONE | OK, (addr, port))."""
    found = False
    end = len(xff)
    while True:
        if end <= 0 or not cidr_match(state[0], proxies):
            return (DONE if found else DECLINED), state
        p = end - 1
        while p > 0 and xff[p] in " ,":
            p -= 1
            end -= 1
        while p > 0:
            if xff[p] in " ,":
                p += 1
                break
            p -= 1
        parsed = parse_addr_port(xff[p:end])
        if parsed is None:
            return (DONE if found else DECLINED), state
        state = parsed
        found = True
        end = p - 1
        if not (recursive and p > 0):
            return OK, state
