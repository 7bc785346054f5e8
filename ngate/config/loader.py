"""Loading a configuration: nginx.conf -> frozen model (model.py). Runs at start and reload only.

    load_config(conf_file, prefix=None, global_directives="") -> Config
    dump_config(config) -> str        # what `-T` prints after the test
    DEFAULT_CONF                      # ngate's bundled default nginx.conf
"""
from __future__ import annotations

import dataclasses
import os

from ngate.config.compile import compile_config
from ngate.config.load import DEFAULTS_DIR, Reader, parse_global
from ngate.config.model import Config
from ngate.errors import ConfigError
from ngate.observability.error_log import os_error

DEFAULT_CONF = os.path.join(DEFAULTS_DIR, "nginx.conf")

__all__ = ["DEFAULT_CONF", "dump_config", "load_config"]


def load_config(conf_file: str, prefix: str | None = None,
                global_directives: str = "") -> Config:
    """Read, check and compile a configuration; raise ConfigError (nginx's wording, file:line).

    `prefix` is nginx's -p (default: the directory of conf_file); relative paths of pid, logs
    and root resolve against it, `include` against the main file's directory. The returned
    config's templates use its own maps (routing/variables.py UserVars).

    This is the one place where a failure of any kind while loading becomes a ConfigError
    (an `[emerg]`): -t, start, `-s` and every reload go through it, so a config that ngate
    did not foresee is refused, never a traceback and never a dead master.
    """
    try:
        config = _load(conf_file, prefix, global_directives)
    except ConfigError:
        raise
    except OSError as err:
        raise ConfigError(f'open() "{err.filename}" failed {os_error(err)}') from None
    except RecursionError:
        raise ConfigError("configuration is nested too deeply") from None
    except Exception as err:        # noqa: BLE001 - the one place any load failure is worded
        raise ConfigError(f"configuration failed to load ({type(err).__name__}: {err})") from None
    return config


def _load(conf_file: str, prefix: str | None, global_directives: str) -> Config:
    conf_file = os.path.abspath(conf_file)
    prefix = os.path.abspath(prefix) if prefix else os.path.dirname(conf_file)
    reader = Reader(os.path.dirname(conf_file))
    stmts = parse_global(global_directives) + reader.read_file(conf_file)
    config = compile_config(stmts, prefix, conf_file)
    return _with_files(config, reader.texts)


def _with_files(config: Config, texts: dict) -> Config:
    return dataclasses.replace(config, files=tuple(texts), raw=dict(texts))


def dump_config(config: Config) -> str:
    """`# configuration file <path>:` and the file's text, for every file read, as nginx -T."""
    texts = config.raw or {}
    out = []
    for path in config.files:
        out.append(f"# configuration file {path}:\n{texts.get(path, '')}\n")
    return "".join(out)
