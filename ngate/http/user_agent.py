"""The browsers nginx recognises in a request's User-Agent (ngx_http_process_user_agent, nginx
1.22): the flags its keepalive_disable, gzip_disable msie6, msie_padding and msie_refresh read.

Only the first User-Agent header counts (nginx ignores the later ones), as `ctx.hdr` keeps it:

  MSIE       "MSIE " with at least 8 bytes from it to the end ("MSIE 6.0"), not Opera
  MSIE6      MSIE 4.x, 5.x, or 6.x without "SV1" after it
  OPERA      "Opera" anywhere (clears MSIE and MSIE6)
  GECKO      neither MSIE nor Opera: "Gecko/"
  CHROME     none of the above: "Chrome/"
  SAFARI     none of the above: "Safari/" and "Mac OS X"
  KONQUEROR  none of the above: "Konqueror"

Computed where a rare answer needs it (a status page, a redirect, a POST's keep-alive), not per
request.
"""
from __future__ import annotations

MSIE = 1
MSIE6 = 2
OPERA = 4
GECKO = 8
CHROME = 16
SAFARI = 32
KONQUEROR = 64


def browser(ua: bytes | None) -> int:
    """ngx_http_process_user_agent's flags for a User-Agent value (None: no header)."""
    if not ua:
        return 0
    flags = 0
    i = ua.find(b"MSIE ")
    if 0 <= i and i + 7 < len(ua):
        flags = MSIE
        if ua[i + 6:i + 7] == b".":
            major = ua[i + 5:i + 6]
            if major in (b"4", b"5") or (major == b"6" and ua.find(b"SV1", i + 8) < 0):
                flags = MSIE | MSIE6
    if b"Opera" in ua:
        return OPERA
    if flags:
        return flags
    if b"Gecko/" in ua:
        return GECKO
    if b"Chrome/" in ua:
        return CHROME
    if b"Safari/" in ua and b"Mac OS X" in ua:
        return SAFARI
    if b"Konqueror" in ua:
        return KONQUEROR
    return 0


def request_browser(ctx) -> int:
    """The flags of a request (a subrequest shares its main request's headers, as nginx's)."""
    return browser(ctx.hdr.get(b"user-agent"))
