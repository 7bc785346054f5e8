"""Consecutive free ports, for `listen` port ranges (`listen 127.0.0.1:8182-8184;`)."""
from __future__ import annotations

import socket

from .processes import _HANDED_OUT, free_port


def free_port_range(count: int, v6: bool = True) -> int:
    """The first of `count` consecutive ports nothing listens on, on 127.0.0.1 and (with `v6`)
    on ::1; none of them handed out before by free_port()."""
    for _ in range(200):
        base = free_port()
        ports = range(base, base + count)
        if ports[-1] > 65535 or any(p in _HANDED_OUT for p in ports[1:]):
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
