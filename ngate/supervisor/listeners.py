"""Listening sockets, bound by the master before workers start and kept across reloads.

`Listeners` maps a listen key (Listen.key) to a list of bound sockets: one socket, or, with
`reuseport`, one SO_REUSEPORT socket per worker (worker i accepts on socket i).
On reload, `rebind(config)` keeps the sockets whose key is still used, binds the new keys and
returns the sockets of dropped keys for the caller to close once the old workers are told to stop.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
import time

from ngate.config.servers import socket_listen
from ngate.server.wildcard import WILDCARDS
from ngate.observability import error_log
from ngate.observability.error_log import os_error


class BindError(Exception):
    """`bind() to 127.0.0.1:80 failed (98: Address already in use)`."""


class AddressInUse(BindError):
    """EADDRINUSE from bind() or listen(): tried again (Listeners.rebind)."""


BIND_TRIES = 5          # nginx's ngx_open_listening_sockets: five tries, 500 ms apart
BIND_DELAY = 0.5


def listen_text(listen) -> str:
    if listen.unix:
        return f"unix:{listen.unix}"
    if ":" in listen.host:
        return f"[{listen.host}]:{listen.port}"
    return f"{listen.host}:{listen.port}"


def config_listens(config) -> dict:
    """key -> the Listen its socket is made as (config/servers.py socket_listen), for every
    key bound on its own: not an address whose port has a wildcard listen of its family,
    unless it says `bind` or sets a socket option (nginx's ngx_http_init_listening; the
    wildcard socket serves it: server/wildcard.py)."""
    found: dict = {}
    for server in config.servers:
        for listen in server.listens:
            found.setdefault(listen.key, []).append(listen)
    wild = {(":" in host, port) for host, port in found if host in WILDCARDS}
    return {key: socket_listen(listens) for key, listens in found.items()
            if key[0] == "unix" or key[0] in WILDCARDS or (":" in key[0], key[1]) not in wild
            or any(lst.bind for lst in listens)}


def bind_one(listen) -> socket.socket:
    if listen.unix:
        return _bind_unix(listen)
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if listen.reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(listen.ipv6only))
        _bind(sock, (listen.host, listen.port), listen)
        configure(sock, listen)
        return sock
    except BaseException:
        sock.close()
        raise


def configure(sock: socket.socket, listen, kept: bool = False) -> None:
    """The listen's socket options, set after listen() as nginx's
    ngx_configure_listening_sockets does (accepted connections inherit them); one the system
    refuses is logged and ignored, as there. On a socket kept across a reload (`kept`), a
    `deferred` the new config drops is switched off, as nginx's delete_deferred."""
    tcp = sock.family != socket.AF_UNIX
    todo = []
    if kept and tcp and not listen.deferred and _deferred(sock):
        todo.append(("TCP_DEFER_ACCEPT", socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 0))
    if listen.rcvbuf != -1:
        todo.append(("SO_RCVBUF", socket.SOL_SOCKET, socket.SO_RCVBUF, listen.rcvbuf))
    if listen.sndbuf != -1:
        todo.append(("SO_SNDBUF", socket.SOL_SOCKET, socket.SO_SNDBUF, listen.sndbuf))
    if listen.so_keepalive is not None:
        on, idle, intvl, cnt = listen.so_keepalive
        todo.append(("SO_KEEPALIVE", socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(on)))
        if tcp:
            for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", intvl),
                                ("TCP_KEEPCNT", cnt)):
                if value:
                    todo.append((name, socket.IPPROTO_TCP, getattr(socket, name), value))
    if tcp and listen.fastopen != -1:
        todo.append(("TCP_FASTOPEN", socket.IPPROTO_TCP, socket.TCP_FASTOPEN, listen.fastopen))
    if tcp and listen.deferred:
        # 1 s: nginx's value (how long a connection waited in the queue is unknown)
        todo.append(("TCP_DEFER_ACCEPT", socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1))
    for name, level, option, value in todo:
        try:
            sock.setsockopt(level, option, value)
        except (OSError, OverflowError) as err:
            why = os_error(err) if isinstance(err, OSError) else "(value out of range)"
            error_log.log("alert", f"setsockopt({name}, {value}) {listen_text(listen)} "
                                   f"failed {why}, ignored")


def _reuseport(sock: socket.socket, listen) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError as err:
        error_log.alert(f"setsockopt(SO_REUSEPORT) {listen_text(listen)} failed "
                        f"{os_error(err)}, ignored")


def _deferred(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT))
    except OSError:
        return False


def _bind_unix(listen) -> socket.socket:
    try:
        if stat.S_ISSOCK(os.lstat(listen.unix).st_mode):
            os.unlink(listen.unix)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _bind(sock, listen.unix, listen)
        configure(sock, listen)
        return sock
    except BaseException:
        sock.close()
        raise


def _bind(sock: socket.socket, address, listen) -> None:
    try:
        sock.bind(address)
    except OSError as err:
        kind = AddressInUse if err.errno == errno.EADDRINUSE else BindError
        raise kind(f"bind() to {listen_text(listen)} failed {os_error(err)}") from None
    if listen.unix:     # as nginx: anyone may connect (the socket file's directory decides)
        try:
            os.chmod(listen.unix, 0o666)
        except OSError as err:
            error_log.emerg(f'chmod() "{listen.unix}" failed {os_error(err)}')
    try:
        sock.listen(listen.backlog)
    except OSError as err:
        kind = AddressInUse if err.errno == errno.EADDRINUSE else BindError
        raise kind(f"listen() to {listen_text(listen)}, backlog {listen.backlog} "
                   f"failed {os_error(err)}") from None
    sock.setblocking(False)


class Listeners:
    def __init__(self) -> None:
        self.sockets: dict[tuple, list[socket.socket]] = {}
        self.reuseport: dict[tuple, bool] = {}

    def rebind(self, config) -> list[socket.socket]:
        """Make the sockets match `config`; return the dropped sockets (not yet closed).

        As nginx's ngx_open_listening_sockets: an address in use is logged and tried again
        after 500 ms, five times in all, then "still could not bind()"; any other failure
        ends at once. On BindError nothing changes: sockets bound so far for this config are
        closed.
        """
        workers = max(1, config.main.worker_processes)
        wanted = config_listens(config)
        kept: dict[tuple, list[socket.socket]] = {}
        for key, listen in wanted.items():
            count = workers if listen.reuseport else 1
            kept[key] = self.sockets.get(key, [])[:count]
            if listen.reuseport and kept[key] and not self.reuseport.get(key):
                # `reuseport` added: the old socket gets SO_REUSEPORT first, so that the
                # workers' new ones may bind beside it (nginx's add_reuseport)
                _reuseport(kept[key][0], listen)
        old = {id(s) for socks in kept.values() for s in socks}
        fresh: list[socket.socket] = []
        try:
            for tries in range(BIND_TRIES, 0, -1):
                failed = False
                for key, listen in wanted.items():
                    count = workers if listen.reuseport else 1
                    while len(kept[key]) < count:
                        try:
                            sock = bind_one(listen)
                        except AddressInUse as err:
                            error_log.emerg(str(err))
                            failed = True
                            break
                        kept[key].append(sock)
                        fresh.append(sock)
                if not failed:
                    break
                if tries > 1:
                    error_log.notice(f"try again to bind() after {int(BIND_DELAY * 1000)}ms")
                    time.sleep(BIND_DELAY)
            else:
                raise BindError("still could not bind()")
        except BaseException:
            close_sockets(fresh)
            raise
        for key, listen in wanted.items():    # the new config's options on a kept socket
            for sock in kept[key]:            # (nginx's new cycle configures them all)
                if id(sock) in old:
                    configure(sock, listen, kept=True)
        still = {id(s) for socks in kept.values() for s in socks}
        dropped = [s for socks in self.sockets.values() for s in socks if id(s) not in still]
        self.sockets = kept
        self.reuseport = {key: listen.reuseport for key, listen in wanted.items()}
        return dropped

    def for_worker(self, index: int) -> dict:
        """key -> the socket worker `index` accepts on."""
        return {key: socks[index % len(socks)] for key, socks in self.sockets.items()}

    def close(self) -> None:
        for socks in self.sockets.values():
            close_sockets(socks)
        self.sockets = {}


def close_sockets(socks) -> None:
    """Close sockets; a unix socket's file goes with it."""
    for s in socks:
        path = s.getsockname() if s.family == socket.AF_UNIX else None
        s.close()
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
