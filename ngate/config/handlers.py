"""Directive handlers for statements without blocks: `handler(compiler, level, stmt)`, the
handler column of directives.py's rows.

Each nginx module's handlers live with their module's name; this module gathers them under one
name for the registry (`h.scalar("daemon", h.flag)`):
  slots.py      the combinators and plain value parsers (nginx's ngx_conf_set_*_slot)
  core.py       main and http core, headers, index, autoindex, static files
  logs.py       error_log, log_format, access_log
  access.py     allow/deny, satisfy, auth_basic_user_file, auth_request_set
  rewrite.py    set, return, rewrite, break
  proxy.py      proxy_pass, proxy_set_header, proxy_redirect, proxy_cookie_*
  fastcgi.py    fastcgi_pass, fastcgi_param, fastcgi_split_path_info
  upstreams.py  *_next_upstream, *_ignore_headers, upstream `zone`
  cors.py       cors (an ngate extension)
"""
from __future__ import annotations

from ngate.config.slots import (OFFSET_DIRECTIVES, args_tuple, array, as_number, bitmask, bufs,
                                count, each_arg, first_arg, flag, header_set,
                                invalid_value, is_default, lower_bytes, msec, msec_or_off,
                                no_effect, no_effect_warning, number, path_arg, refused,
                                scalar, sec, section_key, size, template, wire)  # noqa: F401
from ngate.config.core import (add_header, alias, autoindex_format, charset_types,
                               disable_symlinks, empty_gif, error_page, expires,
                               if_modified_since, in_file_only, index_args, keepalive_disable,
                               keepalive_timeout, lingering_close, open_file_cache, rate_size,
                               root, server_tokens, temp_path, try_files, user, worker_processes)  # noqa: F401
from ngate.config.logs import LOG_LEVELS, access_log, error_log, log_format  # noqa: F401
from ngate.config.access import access_rule, auth_basic_user_file, auth_request_set, satisfy  # noqa: F401
from ngate.config.rewrite import (CHANGEABLE_VARIABLES, URL_PREFIXES, break_, return_, rewrite,
                                  set_var)  # noqa: F401
from ngate.config.proxy import (http_version, proxy_cookie, proxy_cookie_flags, proxy_pass,
                                proxy_redirect, proxy_set_header)  # noqa: F401
from ngate.config.fastcgi import fastcgi_param, fastcgi_pass, split_path_info  # noqa: F401
from ngate.config.upstreams import (IGNORE_HEADERS, NEXT_UPSTREAM, ignore_headers,
                                    next_upstream, upstream_zone)  # noqa: F401
from ngate.config.cors import CORS_METHODS, cors  # noqa: F401
