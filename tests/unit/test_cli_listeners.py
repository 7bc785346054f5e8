"""The master's listening sockets: binding options, bind errors, and what a reload keeps."""
from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from ngate.config.model import Listen
from ngate.supervisor import listeners as listeners_module
from ngate.supervisor.listeners import BindError, Listeners, bind_one, listen_text
from tests.harness.processes import free_port


def config(*listens, workers=1):
    servers = tuple(SimpleNamespace(listens=(l,)) for l in listens)
    return SimpleNamespace(servers=servers, main=SimpleNamespace(worker_processes=workers))


@pytest.fixture
def listeners():
    ls = Listeners()
    yield ls
    ls.close()


def test_listen_text():
    assert listen_text(Listen("127.0.0.1", 80, None)) == "127.0.0.1:80"
    assert listen_text(Listen("::1", 8080, None)) == "[::1]:8080"
    assert listen_text(Listen("", 0, "/run/x.sock")) == "unix:/run/x.sock"


def test_bind_error_in_nginx_wording():
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(BindError) as info:
            bind_one(Listen("127.0.0.1", port, None))
    assert str(info.value) == f"bind() to 127.0.0.1:{port} failed (98: Address already in use)"


def test_ipv6_only_and_backlog():
    sock = bind_one(Listen("::1", free_port(), None, ipv6only=True, backlog=7))
    with sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert not sock.getblocking()


def test_stale_unix_socket_is_replaced(tmp_path, listeners):
    path = str(tmp_path / "ngate.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()                       # the file stays behind, as after a crash
    listeners.rebind(config(Listen("", 0, path)))
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
    listeners.close()
    assert not (tmp_path / "ngate.sock").exists()


def test_reuseport_gives_each_worker_its_own_socket(listeners):
    listen = Listen("127.0.0.1", free_port(), None, reuseport=True)
    listeners.rebind(config(listen, workers=3))
    socks = [listeners.for_worker(i)[listen.key] for i in range(3)]
    assert len({s.fileno() for s in socks}) == 3
    assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)


def test_rebind_keeps_used_sockets_and_returns_dropped(listeners):
    a = Listen("127.0.0.1", free_port(), None)
    b = Listen("127.0.0.1", free_port(), None)
    c = Listen("127.0.0.1", free_port(), None)
    assert listeners.rebind(config(a, b)) == []
    kept, dropped_sock = listeners.sockets[a.key][0], listeners.sockets[b.key][0]
    dropped = listeners.rebind(config(a, c))
    assert dropped == [dropped_sock]
    assert listeners.sockets[a.key] == [kept]
    assert set(listeners.sockets) == {a.key, c.key}
    dropped_sock.close()


def test_failed_rebind_changes_nothing(listeners, monkeypatch):
    monkeypatch.setattr(listeners_module, "BIND_DELAY", 0.01)
    a = Listen("127.0.0.1", free_port(), None)
    listeners.rebind(config(a))
    before = dict(listeners.sockets)
    busy_port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", busy_port))
        busy.listen()
        fresh = Listen("127.0.0.1", free_port(), None)
        with pytest.raises(BindError):
            listeners.rebind(config(a, fresh, Listen("127.0.0.1", busy_port, None)))
    assert listeners.sockets == before
    with socket.socket() as probe:      # the socket bound before the failure was released
        probe.bind(("127.0.0.1", fresh.port))


def test_rebind_sets_the_new_options_on_a_kept_socket(listeners):
    """A reload that changes sndbuf=/so_keepalive=/deferred of a listen keeps its socket and
    sets the new options on it (nginx configures every listening socket of the new cycle)."""
    port = free_port()
    listeners.rebind(config(Listen("127.0.0.1", port, None, deferred=True)))
    sock = listeners.sockets[("127.0.0.1", port)][0]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)
    listeners.rebind(config(Listen("127.0.0.1", port, None, sndbuf=8192,
                                   so_keepalive=(True, 60, 0, 0))))
    assert listeners.sockets[("127.0.0.1", port)] == [sock]
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 16384     # doubled by Linux
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0


def test_an_address_in_use_is_tried_again(listeners, monkeypatch):
    """nginx's ngx_open_listening_sockets: EADDRINUSE is logged and tried again after 500 ms,
    five times; a port freed meanwhile (an old process still closing) is taken."""
    import threading
    logged = []
    monkeypatch.setattr(listeners_module.error_log, "emerg", logged.append)
    monkeypatch.setattr(listeners_module.error_log, "notice", logged.append)
    port = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", port))
    busy.listen()
    threading.Timer(0.7, busy.close).start()
    listeners.rebind(config(Listen("127.0.0.1", port, None)))
    assert listeners.sockets[("127.0.0.1", port)][0].getsockname() == ("127.0.0.1", port)
    failed = f"bind() to 127.0.0.1:{port} failed (98: Address already in use)"
    assert logged[:2] == [failed, "try again to bind() after 500ms"]
    assert 2 <= len(logged) <= 4


def test_an_address_in_use_five_times_is_an_error(listeners, monkeypatch):
    logged = []
    monkeypatch.setattr(listeners_module, "BIND_DELAY", 0.01)
    monkeypatch.setattr(listeners_module.error_log, "emerg", logged.append)
    monkeypatch.setattr(listeners_module.error_log, "notice", lambda text: None)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BindError) as info:
            listeners.rebind(config(Listen("127.0.0.1", port, None)))
    assert str(info.value) == "still could not bind()"
    assert logged == [f"bind() to 127.0.0.1:{port} failed (98: Address already in use)"] * 5


def test_other_bind_errors_are_not_tried_again(listeners):
    with pytest.raises(BindError) as info:
        listeners.rebind(config(Listen("192.0.2.1", free_port(), None)))
    assert str(info.value).endswith("failed (99: Cannot assign requested address)")


def test_unix_socket_anyone_may_connect(tmp_path, listeners):
    """nginx chmods a unix listen socket to 0666 (the umask would keep others out)."""
    import os
    import stat
    path = str(tmp_path / "u.sock")
    listeners.rebind(config(Listen("", 0, path)))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666


def test_reload_adds_and_drops_reuseport_on_a_kept_socket(listeners):
    """nginx's add_reuseport: the old socket gets SO_REUSEPORT before the workers' new ones are
    bound beside it (else they could not be); without reuseport again, the first one stays."""
    port = free_port()
    key = ("127.0.0.1", port)
    listeners.rebind(config(Listen("127.0.0.1", port, None), workers=3))
    first = listeners.sockets[key][0]
    assert listeners.rebind(config(Listen("127.0.0.1", port, None, reuseport=True),
                                   workers=3)) == []
    socks = listeners.sockets[key]
    assert len(socks) == 3 and socks[0] is first
    assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
    dropped = listeners.rebind(config(Listen("127.0.0.1", port, None), workers=3))
    assert listeners.sockets[key] == [first] and dropped == socks[1:]
    listeners_module.close_sockets(dropped)
