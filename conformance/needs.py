"""What a test file needs that ngate lacks, read from the file itself (no run needed):

- the harness features it asks for with `has(...)` that `ngate -V` does not provide (the
  harness's own feature regexes are read from lib/Test/Nginx.pm and matched against -V);
- in the configs it writes (`write_file[_expand]('*.conf', <<'EOF')`): directives ngate does not
  know, directives ngate accepts without effect, and variables ngate does not know.

`rank` weighs each need by the assertions nginx passes and ngate does not, summed over the files
that have it: a file with several needs counts for each of them.
"""
from __future__ import annotations

import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from crossplane.lexer import _lex_file_object

_HEREDOC = re.compile(
    r"write_file(?:_expand)?\(\s*'([^']+\.conf)'\s*,\s*<<\s*(['\"]?)(\w+)\2.*?\n(.*?)\n\3\n", re.S)
_HAS = re.compile(r"->has\(\s*(?:qw/([^/]*)/|'([^']*)')")
_REGEX_TABLE = re.compile(r"^\s*(\w+)\s*=>\s*'([^']*)',?\s*$", re.M)
_FEATURES = ("symlink", "unix", "udp", "cryptx", "socket_ssl")   # has_feature(), not modules
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_USER_VAR_DEFS = {"set": 0, "map": 1, "geo": -1, "split_clients": 1, "perl_set": 0,
                  "auth_request_set": 0, "js_set": 0}
_CAPTURE = re.compile(r"\(\?P?<(\w+)>")
_OPAQUE_BLOCKS = {"map", "types", "geo", "split_clients", "match", "charset_map"}
_UNKNOWN = re.compile(r'unknown directive|unknown "\w+" variable')
_WHERE = re.compile(r" in \S+:\d+$")
_CONTEXTS = {"events": "events", "http": "http", "server": "server", "location": "location",
             "upstream": "upstream", "limit_except": "limit_except"}


@dataclass(slots=True)
class Needs:
    modules: set[str] = field(default_factory=set)
    unknown_directives: set[str] = field(default_factory=set)
    accepted_only: set[str] = field(default_factory=set)
    unknown_variables: set[str] = field(default_factory=set)

    def blockers(self, file: str, skipped_all: bool, startup_error: str = "") -> list[str]:
        """What stands between the file and nginx's score, in the order it is met: the modules
        the harness skips it for; else, when its server never started (startup_error: the
        [emerg] it gave), every unknown directive and variable of its configs, or that error;
        else the directives it uses that ngate accepts without effect (a hint: the failures may
        have other causes), or the file's own failures."""
        if skipped_all and self.modules:
            return [f"module {m}" for m in sorted(self.modules)]
        if startup_error:
            found = ([f"directive {d}" for d in sorted(self.unknown_directives)]
                     + [f"variable ${v}" for v in sorted(self.unknown_variables)])
            if not _UNKNOWN.search(startup_error):
                found.append(_WHERE.sub("", startup_error))
            return found
        hints = [f"no effect: {d}" for d in sorted(self.accepted_only)]
        return hints or [f"failures of {file} (it starts)"]


def harness_regexes(tests_dir: Path) -> dict[str, str]:
    text = (tests_dir / "lib" / "Test" / "Nginx.pm").read_text()
    start = text.index("my %regex = (")
    return dict(_REGEX_TABLE.findall(text[start:text.index(");", start)]))


def missing_features(source: str, dash_v: str, regexes: dict[str, str]) -> set[str]:
    wanted = set()
    for m in _HAS.finditer(source):
        wanted.update((m.group(1) or m.group(2)).split())
    missing = set()
    for feature in wanted:
        if feature.startswith(_FEATURES) or re.match(r"(openssl|libressl):", feature):
            continue
        if not re.search(regexes.get(feature, feature), dash_v):
            missing.add(feature)
    return missing


def configs(source: str) -> list[str]:
    return [m.group(4) for m in _HEREDOC.finditer(source)]


def _expand(text: str) -> str:
    """The harness's placeholders: globals (whole lines, ngate-neutral here), ports, the dir."""
    text = re.sub(r"%%TEST_GLOBALS\w*%%", "", text)
    text = re.sub(r"%%PORT_(\d+)(?:_UDP)?%%", r"\1", text)
    return text.replace("%%TESTDIR%%", "/tmp/testdir")


def _tree(text: str) -> list:
    """[(name, args, children | None)] from crossplane's tokens."""
    root: list = []
    stack = [root]
    words: list[str] = []
    tokens = _lex_file_object(io.StringIO(_expand(text)))
    for token, _line, quoted in tokens:
        if not quoted and token.startswith("#"):
            continue
        if not quoted and token == ";":
            if words:
                stack[-1].append((words[0], words[1:], None))
            words = []
        elif not quoted and token == "{":
            children: list = []
            stack[-1].append((words[0] if words else "", words[1:], children))
            stack.append(children)
            words = []
        elif not quoted and token == "}":
            if len(stack) > 1:
                stack.pop()
            words = []
        else:
            words.append(token)
    return root


def _walk(nodes: list, ctx: str):
    for name, args, children in nodes:
        yield ctx, name, args
        if children is None or name in _OPAQUE_BLOCKS:
            continue
        if name == "if":
            sub = "sif" if ctx == "server" else "lif"
        else:
            sub = _CONTEXTS.get(name)
        if sub is None:         # stream, mail, or a block ngate does not know: not looked into
            continue
        yield from _walk(children, sub)


def config_needs(text: str, needs: Needs, registry: dict, implemented, known_variable) -> None:
    statements = list(_walk(_tree(text), "main"))
    user_vars = set()
    for _ctx, name, args in statements:
        pos = _USER_VAR_DEFS.get(name)
        if pos is not None and args and len(args) > abs(pos if pos >= 0 else 1) - 1:
            arg = args[pos] if pos < len(args) else args[-1]
            if arg.startswith("$"):
                user_vars.add(arg[1:])
        for arg in args:
            user_vars.update(_CAPTURE.findall(arg))
    for ctx, name, args in statements:
        rows = registry.get(name)
        if not rows:
            needs.unknown_directives.add(name)
            continue
        if not implemented(name):
            needs.accepted_only.add(name)
        for arg in args:
            for m in _VAR.finditer(arg):
                var = m.group(1) or m.group(2)
                if not var.isdigit() and var not in user_vars and not known_variable(var):
                    needs.unknown_variables.add(var)


def file_needs(path: Path, dash_v: str, regexes: dict[str, str]) -> Needs:
    from ngate.config import directives, modules
    source = path.read_text(errors="replace")
    needs = Needs(modules=missing_features(source, dash_v, regexes))
    for text in configs(source):
        config_needs(text, needs, directives.REGISTRY, modules.implemented, _known_variable)
    return needs


def _known_variable(name: str) -> bool:
    from ngate.errors import ConfigError
    from ngate.routing import variables
    try:
        variables.lookup(name)
    except ConfigError:
        return False
    return True


def rank(blockers: dict[str, list[str]], deficit: dict[str, int]
         ) -> list[tuple[str, int, list[str]]]:
    """[(cause, assertions blocked, files)], most assertions first; files without a deficit
    do not count, a file with several blockers counts for each."""
    blocked: dict[str, int] = defaultdict(int)
    files: dict[str, list[str]] = defaultdict(list)
    for file, causes in blockers.items():
        lost = deficit.get(file, 0)
        if lost <= 0:
            continue
        for cause in causes:
            blocked[cause] += lost
            files[cause].append(file)
    return sorted(((c, blocked[c], files[c]) for c in blocked), key=lambda t: (-t[1], t[0]))
