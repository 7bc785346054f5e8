"""The headers module's section of a LocConf (`conf.headers`, nginx's
ngx_http_headers_conf_t): add_header (and cors, which adds headers) and expires. add_trailer
is read by the response filters (filters/trailers.py) and lives in their chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HeadersConf:
    add_header: tuple = ()           # array of HeaderSet (http/respond.py add_headers)
    expires: Any = None              # static/expires.py Expires, None: off
