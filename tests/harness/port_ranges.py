"""Consecutive free ports, for `listen` port ranges (`listen 127.0.0.1:8182-8184;`)."""
from __future__ import annotations

import random
import socket

from .processes import _HANDED_OUT

# below Linux's ephemeral ports (32768-60999): free_port()'s and outgoing connections' ports
_LOW, _HIGH = 12000, 32000


def free_port_range(count: int, v6: bool = True) -> int:
    """The first of `count` consecutive ports nothing listens on, on 127.0.0.1 and (with `v6`)
    on ::1; none of them handed out before by free_port() or here."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(_LOW, _HIGH - count)
        ports = range(base, base + count)
        if any(p in _HANDED_OUT for p in ports):
            continue
        if all(_bindable(socket.AF_INET, "127.0.0.1", p) for p in ports) and \
                (not v6 or all(_bindable(socket.AF_INET6, "::1", p) for p in ports)):
            _HANDED_OUT.update(ports)
            return base
    raise RuntimeError(f"no {count} consecutive free ports")


def _bindable(family: int, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
