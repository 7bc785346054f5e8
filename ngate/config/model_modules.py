"""Small sections of a LocConf owned by one module each (their handlers write "name.field"
keys; config/sections.py lists the owners): charset, secure_link, mirror and ngate's
WebSocket settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHARSET_TYPES = frozenset({b"text/html", b"text/xml", b"text/plain", b"text/vnd.wap.wml",
                           b"application/javascript", b"application/rss+xml"})


@dataclass(frozen=True, slots=True)
class CharsetConf:
    """The charset module (config/charset_map.py builds it, http1/charset.py reads it)."""
    charset: bytes = b""             # b"": off
    types: Any = CHARSET_TYPES       # None: `*`
    recode: Any = None               # http1/charset.py RecodeConf: source_charset, override ...
    accel: Any = None                # RecodeConf for an upstream's X-Accel-Charset (cache/serve.py)


@dataclass(frozen=True, slots=True)
class SecureLinkConf:
    """secure_link, secure_link_md5 (Templates), secure_link_secret (routing/secure_link.py)."""
    variable: Any = None
    md5: Any = None
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class MirrorConf:
    """mirror and mirror_request_body (proxy/mirror.py)."""
    uris: tuple | None = None        # None: off
    request_body: bool = True


@dataclass(frozen=True, slots=True)
class WebSocketConf:
    """ngate's extension for WebSocket tunnels (proxy/tunnel.py): pings to the client."""
    ping: float = 0.0                # 0: off
    pong_timeout: float = 0.0        # 0: the ping interval
