"""`disable_symlinks off | on | if_not_owner [from=part]`, as nginx's ngx_open_file_wrapper does it.

off (the default): paths are opened as they are; symlinks anywhere are followed.
on: the path is walked one component at a time with openat(): every directory component is
    opened O_PATH|O_DIRECTORY|O_NOFOLLOW (a symlink there fails with ENOTDIR) and the last one
    O_NOFOLLOW (a symlink fails with ELOOP).
if_not_owner: each component is opened following links, and refused with ELOOP when the owner
    of what was opened differs from the owner of the name itself (lstat): a link to a file of
    its own owner is followed.
from=part: when the rendered part is a leading part of the path ending at a component
    boundary, that part is opened as it is and only the rest is walked; when it is the whole
    path nothing is checked; when it is not a leading part the whole path is checked
    (ngx_http_set_disable_symlinks).

The walk is the check: nothing is cached, so a symlink that appears between two requests is seen
by the second. The errors are OSErrors carrying nginx's errno and `failed`, the name of the call
nginx would log ("openat()" for the walk, "open()" for the `from` part).
"""
from __future__ import annotations

import errno
import os

OFF, ON, NOT_OWNER = "off", "on", "if_not_owner"
_SEARCH = os.O_PATH | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC
_TEST = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC     # ngx_file_info_wrapper's open


class SymlinkError(OSError):
    """An open refused or failed during the walk; `failed` is the call nginx names."""

    def __init__(self, code: int, path: str, failed: str) -> None:
        super().__init__(code, os.strerror(code), path)
        self.failed = failed


def plan(ctx, path: str) -> tuple[str, int]:
    """(mode, start) for `path`: start is the offset of the `/` that ends the unchecked part."""
    conf = ctx.conf.disable_symlinks
    if conf is None:
        return OFF, 0
    return plan_with(conf.mode, conf.from_.render(ctx) if conf.from_ is not None else None, path)


def plan_with(mode: str, part: str | None, path: str) -> tuple[str, int]:
    """ngx_http_set_disable_symlinks with `from=` already rendered (`part`, None without it)."""
    if not part or len(part) > len(path) or not path.startswith(part):
        return mode, 0
    if len(part) == len(path):
        return OFF, 0
    if path[len(part)] == "/":
        return mode, len(part)
    if part.endswith("/"):
        return mode, len(part) - 1
    return mode, 0


def open_path(ctx, path: str, flags: int) -> int:
    """os.open(path, flags) under this request's disable_symlinks; a SymlinkError or OSError."""
    mode, start = plan(ctx, path)
    if mode == OFF:
        return os.open(path, flags)
    return walk(path, flags, mode, start)


def stat_path(ctx, path: str) -> os.stat_result:
    """os.stat(path) under disable_symlinks (nginx's ngx_file_info_wrapper: open, fstat)."""
    return stat_planned(path, *plan(ctx, path))


def stat_planned(path: str, mode: str, start: int) -> os.stat_result:
    if mode == OFF:
        return os.stat(path)
    fd = walk(path, _TEST, mode, start)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def walk(path: str, flags: int, mode: str, start: int) -> int:
    """ngx_open_file_wrapper with symlink checks: the final descriptor opened with `flags`."""
    if start:
        at, rest = _open(path[:start], path), path[start + 1:]
    elif path.startswith("/"):
        at, rest = _open("/", path), path[1:]
    else:
        at, rest = None, path
    try:
        parts = rest.split("/")
        for name in parts[:-1]:
            if not name:
                continue
            fd = _component(at, name, _SEARCH, mode, path)
            if at is not None:
                os.close(at)
            at = fd
        last = parts[-1]
        if not last:            # a trailing slash: the last component must be a directory
            return _openat(at, ".", flags, path)
        return _component(at, last, flags, mode, path)
    finally:
        if at is not None:
            os.close(at)


def _component(at, name: str, flags: int, mode: str, path: str) -> int:
    if mode == NOT_OWNER:
        return _open_owner(at, name, flags, path)
    try:                        # _openat's, a frame less per component
        return os.open(name, flags | os.O_NOFOLLOW, dir_fd=at)
    except OSError as exc:
        raise SymlinkError(exc.errno or errno.EIO, path, "openat()") from None


def _open_owner(at, name: str, flags: int, path: str) -> int:
    """ngx_openat_file_owner: open following links, refuse when the owners differ."""
    fd = _openat(at, name, flags, path)
    try:
        link = os.stat(name, dir_fd=at, follow_symlinks=False)
        target = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise SymlinkError(exc.errno or errno.EIO, path, "openat()") from None
    if link.st_uid != target.st_uid:
        os.close(fd)
        raise SymlinkError(errno.ELOOP, path, "openat()")
    return fd


def _openat(at, name: str, flags: int, path: str) -> int:
    try:
        return os.open(name, flags, dir_fd=at)
    except OSError as exc:
        raise SymlinkError(exc.errno or errno.EIO, path, "openat()") from None


def _open(name: str, path: str) -> int:
    try:
        return os.open(name, _SEARCH)
    except OSError as exc:
        raise SymlinkError(exc.errno or errno.EIO, path, "open()") from None
