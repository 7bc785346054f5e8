"""ngate's error types.

ConfigError: a configuration problem, rendered nginx-style: `<message> in <file>:<line>`.
ProxyError: the one error type of the request path. It says where it came from (client,
upstream, internal), whether retrying on another upstream is safe, and the status it maps to;
proxy/errors.py turns it into a response (400, 408, 413, 431, 499 logged, 502, 504).
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


CLIENT = "client"
UPSTREAM = "upstream"
INTERNAL = "internal"


class ProxyError(Exception):
    __slots__ = ("status", "origin", "retry_safe", "log_message", "level")

    def __init__(self, status: int, origin: str, log_message: str = "",
                 retry_safe: bool = False, level: str = "error") -> None:
        super().__init__(log_message or str(status))
        self.status = status
        self.origin = origin
        self.retry_safe = retry_safe
        self.log_message = log_message
        self.level = level
