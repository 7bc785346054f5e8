"""Reading configuration files into a tree of statements, with `include` expanded in place.

Tokens come from crossplane's lexer. The statement structure is built here, the way nginx's
ngx_conf_parse does it, so that every structural error carries nginx's wording and file:line
(crossplane.parse with check_args=False cannot tell `return 200 }` from `return 200; }`).
An `include` is replaced by the statements of the files it names (sorted glob matches, or one
file that must exist). A missing standard file (mime.types, fastcgi_params ...) falls back to
ngate's bundled copy in config/defaults/.

A file is read the way ngx_conf_parse reads it: opened without blocking, then as many bytes as
fstat says it holds. `/dev/zero`, `/dev/stdin` and `/proc/...` files are therefore empty (nginx
sees them so), never an endless or blocking read. Every failure is a ConfigError with nginx's
`open() "path" failed (errno: text)` wording and, for an include, its file:line.
"""
from __future__ import annotations

import glob
import io
import os
import re

from crossplane.lexer import _lex_file_object

from ngate.config.model import Where
from ngate.errors import ConfigError

DEFAULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "defaults")
MAX_INCLUDE_DEPTH = 32
CONF_BUFFER = 4096          # NGX_CONF_BUFFER: the longest token nginx reads, with its delimiter
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
_ESCAPE_RE = re.compile(r"\\(.)", re.S)


class CommandLine(Where):
    """Where of a `-g` directive: nginx says `in command line`."""
    __slots__ = ()

    def __str__(self) -> str:
        return "command line"


class Stmt:
    """One directive: name, arguments, where, and its block (None for `name args;`)."""
    __slots__ = ("directive", "args", "where", "block")

    def __init__(self, directive: str, args: list[str], where: Where, block) -> None:
        self.directive = directive
        self.args = args
        self.where = where
        self.block = block

    def __repr__(self) -> str:
        return f"Stmt({self.directive!r}, {self.args!r}, {self.where})"


class Reader:
    """Reads the main file and its includes; remembers each file's text for `-T`."""

    def __init__(self, conf_dir: str) -> None:
        self.conf_dir = conf_dir
        self.texts: dict[str, str] = {}

    def read_file(self, path: str, depth: int = 0, where: Where | None = None) -> list[Stmt]:
        text = read_conf_file(path, where).decode("utf-8", errors="replace")
        self.texts.setdefault(path, text)
        return self.parse_text(text, path, depth)

    def parse_text(self, text: str, name: str, depth: int = 0) -> list[Stmt]:
        """The statements of one file. Blocks are tracked on an explicit stack, not by
        recursion: however deep a file nests, it is read (or refused) without a RecursionError."""
        tokens = _Tokens(text, name)
        top: list[Stmt] = []
        out = top
        open_blocks: list[list[Stmt]] = []      # the enclosing blocks' statement lists
        while True:
            tok = tokens.next()
            if tok is None:
                if open_blocks:
                    raise tokens.error('unexpected end of file, expecting "}"', eof=True)
                return top
            token, line, quoted = tok
            if not quoted and token == "}":
                if not open_blocks:
                    raise tokens.error('unexpected "}"', line)
                out = open_blocks.pop()
                continue
            if not quoted and token in ("{", ";"):
                raise tokens.error(f'unexpected "{token}"', line)
            stmt = self._statement(tokens, token, line)
            if stmt.block is not None:
                out.append(stmt)
                open_blocks.append(out)
                out = stmt.block
            elif stmt.directive == "include":
                out.extend(self._include(stmt, depth))
            else:
                out.append(stmt)

    def _statement(self, tokens: "_Tokens", name: str, line: int) -> Stmt:
        """`name args ;` (block None) or `name args {` (block [], filled by parse_text)."""
        args: list[str] = []
        while True:
            tok = tokens.next()
            if tok is None:
                raise tokens.error('unexpected end of file, expecting ";" or "}"', eof=True)
            token, tline, quoted = tok
            if not quoted and token == ";":
                return Stmt(_unescape(name), args, tokens.where(line), None)
            if not quoted and token == "{":
                stmt = Stmt(_unescape(name), args, tokens.where(line), [])
                if stmt.directive == "if":
                    _strip_if_parens(args)
                return stmt
            if not quoted and token == "}":
                raise tokens.error('unexpected "}"', tline)
            args.append(_unescape(token))

    def _include(self, stmt: Stmt, depth: int) -> list[Stmt]:
        if len(stmt.args) != 1:
            raise ConfigError('invalid number of arguments in "include" directive', stmt.where)
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(f'include nesting is too deep at "{stmt.args[0]}"', stmt.where)
        out: list[Stmt] = []
        for path in self._include_paths(stmt):
            out.extend(self.read_file(path, depth + 1, stmt.where))
        return out

    def _include_paths(self, stmt: Stmt) -> list[str]:
        pattern = stmt.args[0]
        if not os.path.isabs(pattern):
            pattern = os.path.join(self.conf_dir, pattern)
        if glob.has_magic(pattern):
            return sorted(glob.glob(pattern))      # directories too: nginx fails on them
        if os.path.exists(pattern):
            return [pattern]
        bundled = os.path.join(DEFAULTS_DIR, os.path.basename(pattern))
        if os.path.basename(pattern) != "nginx.conf" and os.path.isfile(bundled):
            return [bundled]
        raise ConfigError(f'open() "{pattern}" failed (2: No such file or directory)', stmt.where)


def read_conf_file(path: str, where: Where | None = None) -> bytes:
    """The file's bytes, `st_size` of them (ngx_conf_parse: ngx_fd_info, then ngx_read_file)."""
    from ngate.observability.error_log import os_error
    call = "open()"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            call = "fstat()"
            size = os.fstat(fd).st_size
            call = "pread()"
            chunks, got = [], 0
            while got < size:
                chunk = os.pread(fd, min(size - got, 1 << 20), got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        finally:
            os.close(fd)
    except OSError as err:
        raise ConfigError(f'{call} "{path}" failed {os_error(err)}', where) from None
    return b"".join(chunks)


class _Tokens:
    """crossplane's token stream, minus comments, with nginx's end-of-file line number."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.eof_line = text.count("\n") + 1
        # crossplane drops a last token with nothing after it ("...}\nhttp"): nginx does not
        self._it = _lex_file_object(io.StringIO(text + "\n"))

    def next(self):
        for token, line, quoted in self._it:
            if len(token) >= 1023:
                self._check_length(token, line, quoted)
            if quoted or not token.startswith("#"):
                return token, line, quoted
        return None

    def _check_length(self, token: str, line: int, quoted: bool) -> None:
        """nginx reads a file through a 4096-byte buffer (NGX_CONF_BUFFER): a token (or
        comment) that does not fit in it with its closing quote or delimiter is refused."""
        size = len(token.encode("utf-8", "surrogateescape"))
        if quoted and size >= CONF_BUFFER:
            raise self.error('too long parameter, probably missing terminating "\"" character',
                             line)
        if size >= CONF_BUFFER - quoted:
            raise self.error(f'too long parameter "{token[:10]}..." started', line)

    def where(self, line: int) -> Where:
        if self.name == "command line":
            return CommandLine(self.name, 0)
        return Where(self.name, line)

    def error(self, message: str, line: int = 0, eof: bool = False) -> ConfigError:
        return ConfigError(message, self.where(self.eof_line if eof else line))


def _unescape(token: str) -> str:
    """nginx's escapes in every token: \\" \\' \\\\ \\t \\r \\n; other backslashes stay."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), token)


def _strip_if_parens(args: list[str]) -> None:
    """`if ($a = b)` reaches us as `($a`, `=`, `b)`: drop the parentheses as nginx does."""
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:]
        args[-1] = args[-1][:-1]
        if not args[-1]:
            args.pop()
        if args and not args[0]:
            args.pop(0)


def parse_global(text: str) -> list[Stmt]:
    """`-g "daemon off; worker_processes 2;"`: main-context statements from the command line."""
    if not text.strip():
        return []
    if not text.rstrip().endswith((";", "}")):
        raise ConfigError('unexpected end of parameter, expecting ";"', CommandLine("command line", 0))
    return Reader(os.getcwd()).parse_text(text, "command line")
