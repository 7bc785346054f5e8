"""proxy_pass with variables: turn the rendered URL into (upstream group, $proxy_host, URI).

The host is first looked up among `upstream` blocks and the groups of proxy_pass/fastcgi_pass
addresses (nginx's implicit upstreams, by host and port); an IP literal becomes a one-server group
(cached, bounded; its peer state lives with the request, as hook.py's); `localhost` is 127.0.0.1
where no resolver is configured. Other names go to the
location's resolver: LookupError(host, port), and once resolver/hook.py resolved the name, the
group it left on the request.
"""
from __future__ import annotations

import ipaddress

from ngate.config.model import Upstream, UpstreamServer
from ngate.resolver.hook import resolved

_IMPLICIT: dict[tuple, Upstream] = {}


def resolve_proxy_url(config, url: str, ctx=None):
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(url)
    if rest[:5].lower() == "unix:":
        return _unix(rest)
    slash = rest.find("/")
    hostport, uri = (rest, None) if slash < 0 else (rest[:slash], rest[slash:])
    if not hostport:
        raise ValueError(url)
    up = config.upstreams.get(hostport)
    if up is not None:
        return up, hostport, uri
    host, port = _split_hostport(hostport, 443 if scheme == "https" else 80)
    up = config.implicit.get((host.lower(), port))     # a proxy_pass/fastcgi_pass address's group
    if up is not None:
        return up, hostport, uri
    if host == "localhost" and ctx is not None and ctx.conf.resolver is not None:
        up = resolved(ctx, host, port)                  # nginx asks the resolver for it too
        if up is None:
            raise LookupError(host, port)
        return up, hostport, uri
    key = (host, port)
    up = _IMPLICIT.get(key)
    if up is None:
        if host == "localhost":
            addr = "127.0.0.1"
        else:
            try:
                addr = str(ipaddress.ip_address(host.strip("[]")))
            except ValueError:
                up = resolved(ctx, host, port) if ctx is not None else None
                if up is None:
                    raise LookupError(host, port) from None
                return up, hostport, uri
        name = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        up = _remember(key, Upstream(name=hostport, implicit=True, per_request=True,
                                     servers=(UpstreamServer(host=addr, port=port, name=name),)))
    return up, hostport, uri


def _unix(rest: str):
    """`unix:/path/to.sock[:/uri]`, as a static proxy_pass takes it ($proxy_host "localhost")."""
    path, colon, uri = rest[5:].partition(":")
    if not path:
        raise ValueError(rest)
    key = ("unix", path)
    up = _IMPLICIT.get(key)
    if up is None:
        server = UpstreamServer(host="", port=0, unix=path, name="unix:" + path)
        up = _remember(key, Upstream(name="unix:" + path, servers=(server,), implicit=True,
                                     per_request=True))
    return up, "localhost", (uri if colon and uri else None)


def _remember(key: tuple, up: Upstream) -> Upstream:
    """Cache a group made from a variable's address: one an address ever named, so bounded
    (as resolver/hook.py's groups); nothing else is kept for it (Upstream.per_request)."""
    if len(_IMPLICIT) >= 1024:
        _IMPLICIT.clear()
    _IMPLICIT[key] = up
    return up


def _split_hostport(hostport: str, default: int):
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end]
        rest = hostport[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") else default
    host, sep, port = hostport.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return hostport, default
