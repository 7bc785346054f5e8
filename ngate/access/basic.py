"""auth_basic: nginx's ngx_http_auth_basic_module, run in the access phase.

  credentials  the Authorization header, as ngx_http_auth_basic_user parses it (also $remote_user)
  user file    read per request, as nginx does: an edit applies to the next request. Its bytes
               are kept while the file's (dev, inode, size, mtime, ctime) stay the same, which
               is what reading it again would give.
  lookup       nginx's scanner over the file (find_password), then passwd.crypt and a
               constant-time compare.

`check(ctx, conf) -> result` answers DECLINED (no auth_basic here), OK, or a status: 401 (with
ctx.www_authenticate set), 403 (the file does not exist) or 500.
"""
from __future__ import annotations

import errno
import hmac
import os

from ngate.access.passwd import crypt, decode_base64
from ngate.observability import error_log

DECLINED = 0
OK = 1
_CACHE_MAX = 64


def credentials(ctx) -> tuple[bytes, bytes] | None:
    """(user, password) from `Authorization: Basic ...`, or None where nginx finds none."""
    value = ctx.hdr.get(b"authorization")
    if value is None or len(value) < 6 or value[:6].lower() != b"basic ":
        return None
    decoded = decode_base64(value[6:].lstrip(b" "))
    if not decoded:
        return None
    user, colon, password = decoded.partition(b":")
    if not user or not colon:
        return None
    return user, password


def check(ctx, auth) -> int:
    """The auth_basic handler for an AuthBasic (config/model.py) that is set."""
    realm = auth.realm.render(ctx)
    if realm == "off":
        return DECLINED
    creds = credentials(ctx)
    if creds is None:
        error_log.info("no user/password was provided for basic authentication"
                       + error_log.request_suffix(ctx), ctx.conn.number)
        return _unauthorized(ctx, realm)
    user, password = creds
    path = auth.user_file.render(ctx)
    if not path.startswith("/"):
        path = os.path.join(auth.conf_prefix, path)
    entries = _USER_FILES.get(ctx, path)
    if entries is None or entries.__class__ is int:
        return 500 if entries is None else entries
    stored = entries.password(user)
    if stored is None:
        error_log.error(f'user "{_show(user)}" was not found in "{path}"'
                        + error_log.request_suffix(ctx), ctx.conn.number)
        return _unauthorized(ctx, realm)
    encrypted = crypt(password, stored)
    if encrypted is None:
        error_log.crit("crypt_r() failed" + error_log.request_suffix(ctx), ctx.conn.number)
        return 500
    if hmac.compare_digest(encrypted, stored):
        return OK
    error_log.error(f'user "{_show(user)}": password mismatch' + error_log.request_suffix(ctx),
                    ctx.conn.number)
    return _unauthorized(ctx, realm)


def _unauthorized(ctx, realm: str) -> int:
    ctx.www_authenticate = f'Basic realm="{realm}"'
    ctx.rare = True     # (http/context.py _GUARDED)
    return 401


def _show(user: bytes) -> str:
    return user.decode("latin-1")


# ---------------------------------------------------------------- the user file

class UserFile:
    """One version of a user file's bytes, and the lookups already done in it."""
    __slots__ = ("key", "data", "found")

    def __init__(self, key: tuple, data: bytes) -> None:
        self.key = key
        self.data = data
        self.found: dict = {}

    def password(self, user: bytes) -> bytes | None:
        found = self.found
        if user in found:
            return found[user]
        if len(found) >= _CACHE_MAX:
            found.clear()
        pw = found[user] = find_password(self.data, user)
        return pw


def find_password(data: bytes, user: bytes) -> bytes | None:
    """The stored password of `user`: nginx's state machine (sw_login, sw_passwd, sw_skip).

    A line is `user:password[:anything]`; lines starting with "#" or CR are skipped; the first
    line whose start equals "user:" wins; the password ends at LF, CR, ":" or the end of the
    file. As in nginx, the character that ends a failed comparison is consumed, so a line that
    is a strict prefix of "user:" also hides the line after it.
    """
    target = user + b":"
    n = len(target)
    pos = 0
    size = len(data)
    while pos < size:
        c = data[pos]
        if c == 0x0A:                               # empty line
            pos += 1
            continue
        if c == 0x23 or c == 0x0D:                  # "#" or CR: skip the line
            miss = pos
        elif data.startswith(target, pos):
            start = pos + n
            end = size
            for stop in (b"\n", b"\r", b":"):
                i = data.find(stop, start, end)
                if i >= 0:
                    end = i
            return data[start:end].split(b"\0", 1)[0]
        else:
            miss = pos
            while data[miss] == target[miss - pos]:
                miss += 1                           # stops inside target: it did not match
                if miss == size:
                    return None
        nl = data.find(b"\n", miss + 1)
        if nl < 0:
            return None
        pos = nl + 1
    return None


class UserFiles:
    """Per worker: path -> UserFile, refreshed when the file's identity or times change."""

    def __init__(self) -> None:
        self.files: dict[str, UserFile] = {}

    def get(self, ctx, path: str):
        """The UserFile, or a status (403 when the file does not exist, else 500)."""
        try:
            st = os.stat(path)
        except OSError as e:
            return self._failed(ctx, path, e, "open()")
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self.files.get(path)
        if cached is not None and cached.key == key:
            return cached
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            return self._failed(ctx, path, e, "open()")
        try:
            data = _read_all(fd)
        except OSError as e:
            return self._failed(ctx, path, e, "pread()")
        finally:
            os.close(fd)
        if len(self.files) >= _CACHE_MAX:
            self.files.clear()
        entry = self.files[path] = UserFile(key, data)
        return entry

    @staticmethod
    def _failed(ctx, path: str, e: OSError, call: str) -> int:
        text = f'{call} "{path}" failed ({e.errno}: {os.strerror(e.errno)})' \
            + error_log.request_suffix(ctx)
        if call == "open()" and e.errno == errno.ENOENT:
            error_log.error(text, ctx.conn.number)
            return 403
        error_log.crit(text, ctx.conn.number)
        return 500


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


_USER_FILES = UserFiles()


def remote_user(ctx):
    """$remote_user: the user of `Authorization: Basic ...`, checked or not (as nginx)."""
    creds = credentials(ctx) if ctx.hdr else None
    return None if creds is None else creds[0].decode("latin-1")


VARIABLES = {"remote_user": remote_user}
