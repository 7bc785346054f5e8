"""A worker process: one uvloop loop running a WorkerRuntime on the inherited listening sockets.

Signals (as nginx's worker):
  QUIT       graceful: stop accepting, close idle keep-alive connections, drain in-flight ones
             (up to worker_shutdown_timeout, then abort them), exit 0
  TERM, INT  fast: abort every connection, exit 0
  USR1       reopen logs
  HUP        ignored (the master reloads)
The worker also exits when its master disappears (its parent pid changes).
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import weakref

from ngate.cache import manager as cache_manager
from ngate.limits import phase as limits
from ngate.observability import error_log

PARENT_CHECK_INTERVAL = 1.0
_WORKER_SIGNALS = (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP,
                   signal.SIGCHLD)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
    loop = uvloop.new_event_loop()
    _lighter_transport_map(loop)
    return loop


class _TransportMap(weakref.WeakValueDictionary):
    """uvloop's fd -> transport map, which it fills for every transport it makes (accepted
    connections, upstream connects) and reads only to refuse add_reader/add_writer/sock_* on an
    fd a live transport owns. As a WeakValueDictionary (pure Python) it cost four Python calls
    per connection: __setitem__, KeyedRef's __new__ and __init__, then the removal callback when
    the transport is freed (2% of a worker's CPU under http_close: bench/PROFILE.md, Session 10
    (s10-connsetup)). Here one: a plain weak reference per fd, without a callback; a dead one is
    replaced when its fd is reused (at most one per fd number), and reads as absent."""

    def __setitem__(self, fd, transport) -> None:
        self.data[fd] = _ref(transport)

    def __getitem__(self, fd):
        transport = self.data[fd]()
        if transport is None:
            raise KeyError(fd)
        return transport


_ref = weakref.ref


def _lighter_transport_map(loop) -> None:
    """Give `loop` (uvloop's) a _TransportMap: its map is a private attribute, found among the
    objects the loop refers to (the only WeakValueDictionary) and retyped in place (the same
    layout: a subclass without slots of its own)."""
    for obj in gc.get_referents(loop):
        if type(obj) is weakref.WeakValueDictionary and not obj.data:
            obj.__class__ = _TransportMap
            return


def run_worker(config, sockets: dict, master_pid: int | None) -> int:
    """Run one worker until it is told to stop; return its exit code.

    `master_pid` None: no master (master_process off); the process itself is the server.
    """
    # The worker's signals stay blocked (as the master forked it) until its loop has its
    # handlers: a QUIT sent to a just-forked worker waits instead of killing it (nginx unblocks
    # in ngx_worker_process_init, after ngx_init_signals).
    signal.pthread_sigmask(signal.SIG_SETMASK, _WORKER_SIGNALS)
    for sig in _WORKER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    apply_rlimit_nofile(config.main.worker_rlimit_nofile)
    if master_pid is not None:          # a worker of a master: nginx's user switch
        from ngate.observability import access_log
        from ngate.supervisor import identity
        access_log.open_files(config)
        identity.switch(config.main)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_Worker(config, sockets, loop, master_pid).run())
    finally:
        # Closing the loop puts back SIG_DFL: a second QUIT (the master's stop after a reload's)
        # arriving now must not kill the exiting worker with the default action.
        signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        loop.close()


def apply_rlimit_nofile(limit: int) -> None:
    """worker_rlimit_nofile: the worker's open-files limit (nginx logs an alert if refused)."""
    if not limit:
        return
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard)))
    except (OSError, ValueError) as err:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
        except (OSError, ValueError):
            pass
        error_log.alert(f"setrlimit(RLIMIT_NOFILE, {limit}) failed "
                        f"{error_log.os_error(err) if isinstance(err, OSError) else '(' + str(err) + ')'}")


class _Worker:
    def __init__(self, config, sockets, loop, master_pid) -> None:
        from ngate.server.runtime import WorkerRuntime
        self.config = config
        self.loop = loop
        self.master_pid = master_pid
        self.runtime = WorkerRuntime(config, sockets, loop)
        self.done = loop.create_future()
        self.stopping = False
        self.cache_manager = None

    async def run(self) -> int:
        loop = self.loop
        loop.add_signal_handler(signal.SIGQUIT, self.graceful)
        loop.add_signal_handler(signal.SIGTERM, self.fast)
        loop.add_signal_handler(signal.SIGINT, self.fast)
        loop.add_signal_handler(signal.SIGUSR1, self.reopen)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)
        await self.runtime.start()
        self.cache_manager = cache_manager.start(self.config, loop)
        if self.master_pid is not None:
            loop.call_later(PARENT_CHECK_INTERVAL, self.check_parent)
        code = await self.done
        limits.release_all()
        error_log.notice("exit")
        return code

    def graceful(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.cache_manager is not None:
            self.cache_manager.stop()
        error_log.notice("gracefully shutting down")
        self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        rt = self.runtime
        rt.stop_accepting()
        # uvloop (and server/plain_transport.py's PlainServer) run connection_made with
        # call_soon: a connection accepted just before the listeners closed is not among
        # rt.connections yet; let it register (and be served)
        await asyncio.sleep(0)
        error_log.notice("exiting")
        rt.close_idle()
        timeout = self.config.main.worker_shutdown_timeout or None
        await rt.drain(timeout)
        self._finish(0)

    def fast(self) -> None:
        error_log.notice("exiting")
        self.stopping = True
        if self.cache_manager is not None:
            self.cache_manager.stop()
        self.runtime.abort()
        self._finish(0)

    def reopen(self) -> None:
        error_log.notice("reopening logs")
        try:
            error_log.reopen()
        except OSError as err:
            error_log.alert(f"reopen() of error log failed {error_log.os_error(err)}")
        self.runtime.reopen_logs()

    def check_parent(self) -> None:
        if os.getppid() != self.master_pid:
            error_log.alert("master process exited, worker exiting")
            self.fast()
            return
        self.loop.call_later(PARENT_CHECK_INTERVAL, self.check_parent)

    def _finish(self, code: int) -> None:
        if not self.done.done():
            self.done.set_result(code)
