"""The worker's loop keeps uvloop's fd -> transport check with a lighter map
(supervisor/worker.py _TransportMap): add_reader on an fd a live transport owns is still
refused, and allowed again once that transport is gone."""
from __future__ import annotations

import asyncio
import gc
import socket

from ngate.supervisor.worker import _TransportMap, new_loop


def test_worker_loop_has_the_lighter_map():
    loop = new_loop()
    try:
        maps = [o for o in gc.get_referents(loop) if isinstance(o, _TransportMap)]
        assert len(maps) == 1
    finally:
        loop.close()


def test_fd_of_a_live_transport_is_refused_then_free_after_close():
    loop = new_loop()

    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fd = writer.transport.get_extra_info("socket").fileno()
        try:
            loop.add_reader(fd, lambda: None)
        except RuntimeError as exc:
            refused = str(exc)
        else:
            refused = None
        writer.close()
        await asyncio.sleep(0.05)
        gc.collect()
        # the fd number is free: a new socket may get it, and a reader on it is accepted
        s = socket.socket()
        try:
            s.setblocking(False)
            loop.add_reader(s.fileno(), lambda: None)
            loop.remove_reader(s.fileno())
        finally:
            s.close()
        server.close()
        await server.wait_closed()
        return refused

    try:
        refused = loop.run_until_complete(main())
    finally:
        loop.close()
    assert refused is not None and "is used by transport" in refused


def test_map_reads_a_dead_reference_as_absent():
    m = _TransportMap()

    class T:
        pass

    t = T()
    m[5] = t
    assert m[5] is t
    del t
    gc.collect()
    try:
        m[5]
    except KeyError:
        pass
    else:
        raise AssertionError("a dead transport is still mapped")
