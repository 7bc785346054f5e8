"""Configuration: nginx.conf -> frozen model (model.py). Runs at start and reload only.

    loader.load_config(conf_file, prefix=None, global_directives="") -> Config
    loader.dump_config(config) -> str        # what `-T` prints after the test
    loader.DEFAULT_CONF                      # ngate's bundled default nginx.conf

The package itself stays empty so that the request path can import model.py without pulling
in the compiler (which imports each module's config section and phase handlers).
"""
from __future__ import annotations

from ngate.errors import ConfigError

__all__ = ["ConfigError", "DEFAULT_CONF", "dump_config", "load_config"]


def __getattr__(name: str):
    """`from ngate.config import load_config` still works (PEP 562), loaded on first use."""
    if name in ("DEFAULT_CONF", "dump_config", "load_config"):
        from ngate.config import loader
        return getattr(loader, name)
    raise AttributeError(f"module 'ngate.config' has no attribute {name!r}")
