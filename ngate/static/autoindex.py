"""ngx_http_autoindex_module's HTML listing (format html, exact_size on, localtime off)."""
from __future__ import annotations

import os
import time
from urllib.parse import quote

NAME_LEN = 50
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def escape_html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def entries(path: str) -> list:
    """(name, is_dir, size, mtime) for each visible entry: directories first, then by name."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            try:
                st = e.stat()
            except OSError:
                continue
            is_dir = os.path.isdir(e.path)
            out.append((e.name, is_dir, st.st_size, st.st_mtime))
    out.sort(key=lambda x: (not x[1], x[0].encode("utf-8", "surrogateescape")))
    return out


def _line(name: str, is_dir: bool, size: int, mtime: float) -> str:
    href = quote(name.encode("utf-8", "surrogateescape"), safe="") + ("/" if is_dir else "")
    shown = name + ("/" if is_dir else "")
    if len(shown) > NAME_LEN:
        cell = escape_html(shown[:NAME_LEN - 3]) + "..&gt;</a>"
    else:
        cell = escape_html(shown) + "</a>" + " " * (NAME_LEN - len(shown))
    t = time.gmtime(mtime)
    date = "%02d-%s-%d %02d:%02d" % (t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour,
                                    t.tm_min)
    size_text = "%19s" % ("-" if is_dir else size)
    return f'<a href="{href}">{cell} {date} {size_text}\r\n'


def listing(uri: str, path: str) -> bytes:
    title = escape_html(uri)
    parts = [f"<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n"
             f'<h1>Index of {title}</h1><hr><pre><a href="../">../</a>\r\n']
    parts += [_line(*e) for e in entries(path)]
    parts.append("</pre><hr></body>\r\n</html>\r\n")
    return "".join(parts).encode("utf-8", "surrogateescape")
