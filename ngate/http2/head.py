"""The HTTP core writes HTTP/1.1 response heads; an HTTP/2 stream sends them as a HEADERS frame.

`h1_to_h2(head)` turns "HTTP/1.1 200 OK\\r\\nName: value\\r\\n...\\r\\n\\r\\n" into a HEADERS
list: `:status` first, lower-case names, and without the hop-by-hop headers HTTP/2 forbids
(Connection, Keep-Alive, Transfer-Encoding, Upgrade, Proxy-Connection), as nginx's
ngx_http_v2_header_filter builds it from the same response."""
from __future__ import annotations

_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
                  b"proxy-connection"})


def h1_to_h2(head: bytes) -> tuple[int, list, bool]:
    """(status, [(name, value)], chunked?) of a complete HTTP/1.x response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    out = [(b":status", b"%d" % status)]
    chunked = False
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in _HOP:
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            continue
        out.append((name, value.strip()))
    return status, out, chunked
