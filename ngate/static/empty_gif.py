"""ngx_http_empty_gif_module: a 1x1 transparent GIF (43 bytes) for GET and HEAD, 405 otherwise."""
from __future__ import annotations

from ngate.http import phases, respond

GIF = bytes.fromhex("47494638396101000100800100000000ffffff21f90401000001002c00000000"
                    "010001000002024c01003b")
# nginx sets last_modified_time = 23349600
LAST_MODIFIED = b"Mon, 28 Sep 1970 06:00:00 GMT"


def empty_gif_handler(ctx) -> None:
    if ctx.method not in ("GET", "HEAD"):
        return phases.finalize(ctx, 405)
    respond.send_response(ctx, 200, GIF, b"image/gif", last_modified=LAST_MODIFIED)
