"""The FastCGI module's section of a LocConf (`conf.fastcgi`, nginx's
ngx_http_fastcgi_loc_conf_t): filled by the fastcgi_* directives (config/fastcgi.py and
directives.py rows), read by proxy/fastcgi_proxy.py and fastcgi/.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ngate.config.model_upstream import UpstreamSection


@dataclass(frozen=True, slots=True)
class FastCGIConf(UpstreamSection):
    """fastcgi_* without the prefix; the common upstream part is UpstreamSection's. `pass_` is
    the fastcgi_pass group (an Upstream, implicit or named) or a Template with variables."""
    param: tuple = ()                            # array of HeaderSet, in order, duplicates kept
    index: str | None = None
    split_path_info: re.Pattern | None = None
    keep_conn: bool = False
    catch_stderr: tuple = ()                     # array of bytes
