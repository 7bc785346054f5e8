"""The FastCGI module's variables (nginx's ngx_http_fastcgi_module): $fastcgi_script_name and
$fastcgi_path_info, split by fastcgi_split_path_info.

Read by the variables registry (routing/variables.py) from the list in ngate/http/modules.py.
"""
from __future__ import annotations


def fastcgi_split(ctx) -> tuple[str, str]:
    """(script name, path info): fastcgi_split_path_info's two captures of $uri when it matches
    (nginx's ngx_http_fastcgi_split), else ($uri, "")."""
    uri = ctx.uri
    rx = ctx.conf.fastcgi.split_path_info if ctx.conf is not None else None
    if rx is not None:
        m = rx.search(uri)
        if m is not None:
            groups = m.groups()
            return ((groups[0] or "") if groups else "",
                    (groups[1] or "") if len(groups) > 1 else "")
    return uri, ""


def _fastcgi_script_name(ctx):
    name = fastcgi_split(ctx)[0]
    index = ctx.conf.fastcgi.index if ctx.conf is not None else None
    if index and name.endswith("/"):
        return name + index
    return name


def _fastcgi_path_info(ctx):
    return fastcgi_split(ctx)[1]


VARIABLES = {"fastcgi_script_name": _fastcgi_script_name,
             "fastcgi_path_info": _fastcgi_path_info}
