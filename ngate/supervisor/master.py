"""The master process: binds the listeners, forks the workers, and turns signals into actions.

The master runs no event loop: it blocks its signals and takes them one at a time with
sigtimedwait(), which also tells who sent them (nginx's `received from N`).

  TERM, INT  fast stop: TERM to workers; SIGKILL the ones still alive after KILL_AFTER; exit
  QUIT       graceful stop: close the listeners, QUIT to workers, wait for all of them; exit
  HUP        reload: load the config again; on any error log an [emerg] and keep the old one
             (nothing a new config holds may stop the master). On success bind the new listen
             keys (keeping the still-used sockets), close the dropped ones, start a new
             generation of workers, QUIT the old generation.
  USR1       reopen the logs, forward to the workers
  CHLD       reap; a worker of the current generation that exited is replaced unless the master
             is stopping or the worker exited with the fatal code 2.
"""
from __future__ import annotations

import os
import signal
import time
import traceback

from ngate.errors import ConfigError
from ngate.limits import zones
from ngate.observability import error_log, stub_status
from ngate.supervisor import identity
from ngate.supervisor.listeners import BindError, Listeners, close_sockets
from ngate.supervisor.worker import run_worker

KILL_AFTER = 1.0          # seconds between TERM and SIGKILL on fast stop
FATAL_EXIT = 2            # a worker exiting with this code is not respawned (nginx's rule)
MAX_PROCESSES = 1024      # NGX_MAX_PROCESSES: nginx spawns no more than this
MASTER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                  signal.SIGCHLD)
_ACTIONS = {
    signal.SIGHUP: "reconfiguring",
    signal.SIGQUIT: "shutting down",
    signal.SIGTERM: "exiting",
    signal.SIGINT: "exiting",
    signal.SIGUSR1: "reopening",
}


def signal_text(signo: int, sender: int) -> str:
    text = f"signal {signo} ({signal.Signals(signo).name}) received"
    return f"{text} from {sender}" if sender else text


class _Worker:
    __slots__ = ("pid", "index", "generation", "slot")

    def __init__(self, pid: int, index: int, generation: int, slot: int = 0) -> None:
        self.pid = pid
        self.index = index
        self.generation = generation
        self.slot = slot            # its slot in stub_status's shared counters


class Master:
    def __init__(self, config, loader, startup_log: str | None) -> None:
        self.config = config
        self.loader = loader          # () -> Config, raises ConfigError: the reload source
        self.startup_log = startup_log
        self.listeners = Listeners()
        self.workers: dict[int, _Worker] = {}
        self.generation = 0
        self.quitting = False
        self.terminating = False
        self.kill_at = 0.0
        self.pid_path = ""
        zones.adopt(config.zones)

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Run until stopped; return the exit code."""
        signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        try:
            error_log.configure(self.config, self.startup_log, console=True)
            self.listeners.rebind(self.config)
        except BindError as err:
            error_log.emerg(str(err))
            return 1
        except OSError as err:
            error_log.emerg(f'open() "{err.filename}" failed {error_log.os_error(err)}')
            return 1
        except Exception as err:        # noqa: BLE001 - e.g. a NUL byte in a unix: path
            error_log.emerg(f"start failed ({type(err).__name__}: {err})")
            return 1
        if self.config.main.daemon:
            daemonize()
        error_log.configure(self.config, self.startup_log)
        if not self.write_pid(self.config.main.pid):
            return 1
        if not identity.create_paths(self.config):
            self.remove_pid()
            return 1
        try:
            if not self.config.main.master_process:
                return run_worker(self.config, self.listeners.for_worker(0), None)
            return self.supervise()
        finally:
            self.listeners.close()
            self.remove_pid()

    def supervise(self) -> int:
        stub_status.shared()        # mapped before the first fork: every worker shares it
        if self.config.main.uid is not None and os.geteuid() == 0:
            identity.preload_modules()
        error_log.notice("start worker processes")
        self.start_workers()
        while self.workers or not (self.quitting or self.terminating):
            info = signal.sigtimedwait(MASTER_SIGNALS, self.wait_time())
            if info is not None:
                self.on_signal(info.si_signo, info.si_pid)
            self.reap()
            self.kill_stragglers()
        error_log.notice("exit")
        return 0

    def wait_time(self) -> float:
        if self.terminating and self.workers:
            return max(0.01, min(1.0, self.kill_at - time.monotonic()))
        return 1.0

    def on_signal(self, signo: int, sender: int) -> None:
        action = _ACTIONS.get(signo)
        if action is None:
            return          # SIGCHLD: reaped right after
        error_log.notice(f"{signal_text(signo, sender)}, {action}")
        if signo in (signal.SIGTERM, signal.SIGINT):
            self.terminate()
        elif signo == signal.SIGQUIT:
            self.quit()
        elif signo == signal.SIGHUP:
            self.reload()
        elif signo == signal.SIGUSR1:
            self.reopen()

    # ---------------------------------------------------------------- workers

    def start_workers(self) -> None:
        for index in range(max(1, self.config.main.worker_processes)):
            if not self.spawn(index):
                return

    def spawn(self, index: int) -> bool:
        """Fork one worker; False (logged as nginx does) when no more can be started."""
        if len(self.workers) >= MAX_PROCESSES:
            error_log.alert(f"no more than {MAX_PROCESSES} processes can be spawned")
            return False
        used = {w.slot for w in self.workers.values()}
        slot = next((s for s in range(stub_status.MAX_SLOTS) if s not in used), 0)
        master_pid = os.getpid()    # not getppid() in the child: the master may be gone by then
        try:
            pid = os.fork()
        except OSError as err:
            error_log.alert(f"fork() failed while spawning \"worker process\" "
                            f"{error_log.os_error(err)}")
            return False
        if pid == 0:
            stub_status.use_slot(slot)
            os._exit(self.worker_main(index, master_pid))
        self.workers[pid] = _Worker(pid, index, self.generation, slot)
        error_log.notice(f"start worker process {pid}")
        return True

    def worker_main(self, index: int, master_pid: int) -> int:
        mine = self.listeners.for_worker(index)
        keep = {id(s) for s in mine.values()}
        for socks in self.listeners.sockets.values():
            for s in socks:
                if id(s) not in keep:
                    s.close()
        try:
            return run_worker(self.config, mine, master_pid)
        except BaseException:
            error_log.emerg("worker failed: " + traceback.format_exc().rstrip().replace("\n", " | "))
            return FATAL_EXIT

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self.worker_exited(worker, status)

    def worker_exited(self, worker: _Worker, status: int) -> None:
        stub_status.shared().clear_gauges(worker.slot)
        code = None
        if os.WIFSIGNALED(status):
            error_log.alert(f"worker process {worker.pid} exited on signal {os.WTERMSIG(status)}")
        else:
            code = os.WEXITSTATUS(status)
            log = error_log.notice if code == 0 else error_log.alert
            log(f"worker process {worker.pid} exited with code {code}")
        if worker.generation != self.generation or self.quitting or self.terminating:
            return
        if code == FATAL_EXIT:
            error_log.alert(f"worker process {worker.pid} exited with fatal code {code} "
                            "and cannot be respawned")
            return
        self.spawn(worker.index)

    def signal_workers(self, signo: int) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signo)
            except ProcessLookupError:
                pass

    # ---------------------------------------------------------------- actions

    def terminate(self) -> None:
        if not self.terminating:
            self.terminating = True
            self.kill_at = time.monotonic() + KILL_AFTER
        self.signal_workers(signal.SIGTERM)

    def kill_stragglers(self) -> None:
        if self.terminating and self.workers and time.monotonic() >= self.kill_at:
            self.signal_workers(signal.SIGKILL)

    def quit(self) -> None:
        if self.quitting or self.terminating:
            return
        self.quitting = True
        self.signal_workers(signal.SIGQUIT)
        self.listeners.close()

    def reopen(self) -> None:
        error_log.notice("reopening logs")
        try:
            error_log.reopen()
        except OSError as err:
            error_log.alert(f'reopen() "{err.filename}" failed {error_log.os_error(err)}')
        identity.hand_over_logs(self.config)
        self.signal_workers(signal.SIGUSR1)

    def reload(self) -> None:
        if self.quitting or self.terminating:
            return
        old = self.config
        try:
            new = self.loader()
            error_log.configure(new, self.startup_log)
        except ConfigError as err:
            error_log.emerg(str(err))
            return
        except OSError as err:
            error_log.emerg(f'open() "{err.filename}" failed {error_log.os_error(err)}')
            return
        except Exception as err:        # noqa: BLE001 - a reload never stops the master
            error_log.emerg(f"reload failed ({type(err).__name__}: {err})")
            return
        try:
            dropped = self.listeners.rebind(new)
        except Exception as err:        # noqa: BLE001 - BindError, or anything unforeseen
            error_log.emerg(str(err) if isinstance(err, BindError)
                            else f"reload failed ({type(err).__name__}: {err})")
            error_log.configure(old, self.startup_log)
            return
        if new.main.pid != self.pid_path:
            old_path = self.pid_path
            if self.write_pid(new.main.pid) and old_path:
                _unlink(old_path)
        identity.create_paths(new)     # a failure is logged; the workers then fail to spool
        close_sockets(dropped)          # the old workers keep their own copies until QUIT
        old_workers = list(self.workers)
        self.config = new
        zones.adopt(new.zones)
        self.generation += 1
        self.start_workers()
        for pid in old_workers:
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass

    # ---------------------------------------------------------------- pid file

    def write_pid(self, path: str) -> bool:
        if not path:
            return True
        try:
            with open(path, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as err:
            error_log.emerg(f'open() "{path}" failed {error_log.os_error(err)}')
            return False
        self.pid_path = path
        return True

    def remove_pid(self) -> None:
        if self.pid_path:
            _unlink(self.pid_path)
            self.pid_path = ""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as err:
        error_log.alert(f'unlink() "{path}" failed {error_log.os_error(err)}')


def daemonize() -> None:
    """Detach: fork, setsid, fork again; stdio to /dev/null. The original process exits 0."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(fd, std)
    if fd > 2:
        os.close(fd)
