"""A request body read whole before the upstream is contacted (proxy_request_buffering on).

nginx keeps up to client_body_buffer_size in memory and writes the rest to a temporary file
(logging a [warn]); the upstream then gets Content-Length and the body is sent from the file.
ngate does the same: `add` keeps chunks in memory until they pass the limit (at once with
client_body_in_file_only), then moves them to a file of client_body_temp_path named as nginx
names it (ngx_create_temp_file: `path/[levels/]0000000001`), unlinked at once unless
client_body_in_file_only keeps it (`on`: left behind; `clean`: removed when the request ends),
and `send_to` streams the body from it in blocks while the upstream transport accepts them,
resuming from where it stopped when called again (the upstream's resume_writing). A retry on
another peer starts again with `rewind`. $request_body is the body while it is in memory,
$request_body_file the file's name (http/variables.py).
"""
from __future__ import annotations

import os

BLOCK = 65536
_number = [os.getpid() % 123456]    # ngx_next_temp_number: a per-process sequence


class SpoolError(Exception):
    """The temporary file could not be made: nginx logs `[crit] open() "name" failed (13: ...)`
    and answers 500."""

    def __init__(self, name: str, errno: int, strerror: str) -> None:
        super().__init__(f'open() "{name}" failed ({errno}: {strerror})')


class BodySpool:
    __slots__ = ("limit", "size", "chunks", "file", "pos", "name", "temp", "file_only")

    def __init__(self, conf) -> None:
        self.limit = conf.client_body_buffer_size
        self.temp = conf.client_body_temp_path
        self.file_only = conf.client_body_in_file_only
        self.size = 0
        self.chunks: list[bytes] | None = []    # None once the body lives in the file
        self.file = None                        # unbuffered FileIO: closed when collected at the latest
        self.pos = 0                            # next file offset send_to writes
        self.name = None                        # the temporary file's name ($request_body_file)

    @property
    def in_file(self) -> bool:
        return self.chunks is None

    def memory(self) -> bytes | None:
        """$request_body: the body when it is in memory (None once in a file, as nginx)."""
        return None if self.chunks is None else b"".join(self.chunks)

    def add(self, data: bytes) -> str | None:
        """Keep `data`; returns the temporary file's name when this call created it (to log)."""
        self.size += len(data)
        chunks = self.chunks
        if chunks is not None:
            chunks.append(data)
            if self.size <= self.limit and self.file_only == "off":
                return None
            fd = self._create()
            self.file = os.fdopen(fd, "r+b", buffering=0)
            self.chunks = None
            _write_all(fd, b"".join(chunks))
            return self.name
        _write_all(self.file.fileno(), data)
        return None

    def _create(self) -> int:
        """ngx_create_temp_file: the next free number under the path (its level directories
        created when missing); removed from the directory at once unless kept."""
        path, levels = self.temp
        while True:
            _number[0] += 1
            num = "%010d" % _number[0]
            parts, end = [path], len(num)
            for lv in levels:
                parts.append(num[end - lv:end])
                end -= lv
            parts.append(num)
            name = os.path.join(*parts)
            try:
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            except FileNotFoundError:
                if not levels:
                    raise SpoolError(name, 2, "No such file or directory") from None
                try:
                    os.makedirs(os.path.dirname(name), 0o700, exist_ok=True)
                except OSError as err:
                    raise SpoolError(name, err.errno, err.strerror) from None
                continue
            except OSError as err:
                raise SpoolError(name, err.errno, err.strerror) from None
            self.name = name
            if self.file_only == "off":
                os.unlink(name)
            return fd

    def rewind(self) -> None:
        self.pos = 0

    def send_to(self, uconn, wrap=None) -> bool:
        """Write file blocks (framed by `wrap`: FastCGI STDIN records) to the upstream
        connection until it pauses; True when all is sent."""
        t = uconn.transport
        fd = self.file.fileno()
        while not uconn.write_paused:
            block = os.pread(fd, BLOCK, self.pos)
            if not block:
                return True
            self.pos += len(block)
            t.write(block if wrap is None else wrap(block))
        return self.pos >= self.size

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            if self.file_only == "clean":
                try:
                    os.unlink(self.name)
                except OSError:
                    pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
