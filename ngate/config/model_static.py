"""The static content modules' section of a LocConf (`conf.static`, read by ngate/static):
index, autoindex, random_index and gzip_static (nginx keeps one loc conf for each; ngate's
static package serves them all).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StaticConf:
    index: tuple = ("index.html",)   # array; names with variables are Templates
    autoindex: bool = False
    autoindex_format: str = "html"   # html | xml | json | jsonp
    random_index: bool = False
    gzip_static: Any = None          # None, or ("on"|"always", GzipCore) (filters/config.py)
    # open_file_cache: None (off), or the directive's static/open_cache.py OpenFileCache, a
    # worker's table shared by the locations that inherit it (compared by identity)
    open_file_cache: Any = None
    open_file_cache_valid: int = 60  # seconds
    open_file_cache_min_uses: int = 1
    open_file_cache_errors: bool = False
