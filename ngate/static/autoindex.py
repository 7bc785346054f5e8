"""ngx_http_autoindex_module's listings: html (exact_size on, localtime off), xml, json and
jsonp (`autoindex_format`), byte for byte as nginx 1.22 writes them."""
from __future__ import annotations

import os
import re
import stat
import time
from email.utils import formatdate
from urllib.parse import quote

NAME_LEN = 50
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def escape_html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def entries(path: str) -> list:
    """(name, is_dir, size, mtime) for each visible entry: directories first, then by name.
    Names are their bytes as latin-1 characters (nginx pads and cuts the html listing by bytes
    unless the response's charset is utf-8)."""
    return [(name.encode("utf-8", "surrogateescape").decode("latin-1"), kind == "directory",
             size, mtime) for name, kind, size, mtime in typed_entries(path)]


def _line(name: str, is_dir: bool, size: int, mtime: float, utf8: bool = False) -> str:
    href = quote(name.encode("latin-1"), safe="") + ("/" if is_dir else "")
    shown = name + ("/" if is_dir else "")
    if utf8:        # the response's charset is utf-8: nginx pads and cuts by characters
        try:
            shown = shown.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            utf8 = False
    if len(shown) > NAME_LEN:
        cell = escape_html(shown[:NAME_LEN - 3]) + "..&gt;</a>"
    else:
        cell = escape_html(shown) + "</a>" + " " * (NAME_LEN - len(shown))
    if utf8:
        cell = cell.encode("utf-8").decode("latin-1")
    t = time.gmtime(mtime)
    date = "%02d-%s-%d %02d:%02d" % (t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour,
                                    t.tm_min)
    size_text = "%19s" % ("-" if is_dir else size)
    return f'<a href="{href}">{cell} {date} {size_text}\r\n'


def listing(uri: str, path: str, utf8: bool = False) -> bytes:
    title = escape_html(uri)
    parts = [f"<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n"
             f'<h1>Index of {title}</h1><hr><pre><a href="../">../</a>\r\n']
    parts += [_line(*e, utf8) for e in entries(path)]
    parts.append("</pre><hr></body>\r\n</html>\r\n")
    return "".join(parts).encode("latin-1")


# ---------------------------------------------------------------- xml, json, jsonp

FORMATS = ("html", "xml", "json", "jsonp")
CONTENT_TYPES = {"html": b"text/html", "xml": b"text/xml; charset=utf-8",
                 "json": b"application/json", "jsonp": b"application/javascript"}
_CALLBACK = re.compile(r"[A-Za-z0-9_.]{0,128}")
_JSON_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
                 '"': '\\"', "\\": "\\\\"}


def typed_entries(path: str) -> list:
    """(name, type, size, mtime): type "directory", "file" or "other" (a dangling link, a
    socket...), as ngx_de_info (stat, or lstat when the target is gone) sees it."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            try:
                st = os.stat(e.path)
            except FileNotFoundError:
                try:
                    st = os.lstat(e.path)
                except OSError:
                    continue
            except OSError:
                continue
            kind = ("directory" if stat.S_ISDIR(st.st_mode)
                    else "file" if stat.S_ISREG(st.st_mode) else "other")
            # st_mtim.tv_sec; before the epoch: the epoch (ngx_gmtime)
            out.append((e.name, kind, st.st_size, max(st.st_mtime_ns // 1_000_000_000, 0)))
    out.sort(key=lambda x: (x[1] != "directory", x[0].encode("utf-8", "surrogateescape")))
    return out


def jsonp_callback(args: str | None) -> str | None:
    """The `callback` argument ("" when absent), or None when nginx refuses it (400)."""
    value = ""
    for pair in (args or "").split("&"):
        name, eq, v = pair.partition("=")
        if eq and name.lower() == "callback":
            value = v
            break
    return value if _CALLBACK.fullmatch(value) else None


def _json_escape(name: str) -> str:
    out = []
    for ch in name:
        esc = _JSON_ESCAPES.get(ch)
        out.append(esc if esc is not None
                   else "\\u%04X" % ord(ch) if ord(ch) < 0x20 else ch)
    return "".join(out)


def listing_json(path: str, callback: str | None = None) -> bytes:
    items = []
    for name, kind, size, mtime in typed_entries(path):
        tail = f'", "size":{size}' if kind == "file" else '"'
        items.append(f'\r\n{{ "name":"{_json_escape(name)}", "type":"{kind}", '
                     f'"mtime":"{formatdate(mtime, usegmt=True)}{tail} }}')
    body = "[" + ",".join(items) + "\r\n]"
    if callback:
        body = f"/* callback */\r\n{callback}({body});"
    return body.encode("utf-8", "surrogateescape")


def listing_xml(path: str) -> bytes:
    parts = ['<?xml version="1.0"?>\r\n<list>\r\n']
    for name, kind, size, mtime in typed_entries(path):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
        size_attr = f'" size="{size}' if kind == "file" else ""
        parts.append(f'<{kind} mtime="{stamp}{size_attr}">{escape_html(name)}</{kind}>\r\n')
    parts.append("</list>\r\n")
    return "".join(parts).encode("utf-8", "surrogateescape")
