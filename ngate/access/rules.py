"""The access module's allow/deny rules (nginx's ngx_http_access_module).

Rules are tried in order; the first that matches the client's address decides. An IPv4-mapped
IPv6 client is matched as IPv4 (nginx does the same); `unix:` matches clients on a unix socket.
"""
from __future__ import annotations

import ipaddress


def match_rules(ctx, rules) -> bool | None:
    """True (allow), False (deny), or None when no rule matches (nginx's DECLINED)."""
    addr = ctx.conn.remote_addr
    ip = None
    for allow, net in rules:
        if net is None:
            return allow
        if net == "unix:":
            if addr == "unix:":
                return allow
            continue
        if ip is None:
            if addr == "unix:":
                continue
            ip = client_ip(addr)
        if ip.version == net.version and ip in net:
            return allow
    return None


def client_ip(addr: str):
    ip = ipaddress.ip_address(addr)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
