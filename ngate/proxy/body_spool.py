"""A request body read whole before the upstream is contacted (chunked, proxy_request_buffering on).

nginx keeps up to client_body_buffer_size in memory and writes the rest to a temporary file
(logging a [warn]); the upstream then gets Content-Length and the body is sent from the file.
ngate does the same: `add` keeps chunks in memory until they pass the limit, then moves them to an
unlinked temporary file (in the system temp directory: ngate has no client_body_temp_path), and
`send_to` streams the body from it in blocks while the upstream transport accepts them, resuming
from where it stopped when called again (the upstream's resume_writing). A retry on another peer
starts again with `rewind`.
"""
from __future__ import annotations

import os
import tempfile

BLOCK = 65536


class BodySpool:
    __slots__ = ("limit", "size", "chunks", "file", "pos")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.chunks: list[bytes] | None = []    # None once the body lives in the file
        self.file = None                        # unbuffered FileIO: closed when collected at the latest
        self.pos = 0                            # next file offset send_to writes

    @property
    def in_file(self) -> bool:
        return self.chunks is None

    def add(self, data: bytes) -> str | None:
        """Keep `data`; returns the temporary file's name when this call created it (to log)."""
        self.size += len(data)
        chunks = self.chunks
        if chunks is not None:
            chunks.append(data)
            if self.size <= self.limit:
                return None
            fd, name = tempfile.mkstemp(prefix="ngate-body-")
            os.unlink(name)
            self.file = os.fdopen(fd, "r+b", buffering=0)
            self.chunks = None
            _write_all(fd, b"".join(chunks))
            return name
        _write_all(self.file.fileno(), data)
        return None

    def rewind(self) -> None:
        self.pos = 0

    def send_to(self, uconn) -> bool:
        """Write file blocks to the upstream connection until it pauses; True when all is sent."""
        t = uconn.transport
        fd = self.file.fileno()
        while not uconn.write_paused:
            block = os.pread(fd, BLOCK, self.pos)
            if not block:
                return True
            self.pos += len(block)
            t.write(block)
        return self.pos >= self.size

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
