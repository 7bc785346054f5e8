"""ngate's error types.

ConfigError: a configuration problem, rendered nginx-style: `<message> in <file>:<line>`.
An upstream's failures are ngate/upstream/failure.py's UpstreamError.
"""
from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, message: str, where=None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        if self.where is not None:
            return f"{self.message} in {self.where}"
        return self.message

