"""What an upstream plan (proxy_request.Plan, fastcgi_proxy.FastCGIPlan) takes from its module's
section (conf.proxy or conf.fastcgi, both an UpstreamSection: config/model_upstream.py): the
fields the shared exchange code (exchange*.py, response_head.py) reads, whichever module it
serves. `plan.section` is the section itself, for what is read once per response."""
from __future__ import annotations

SLOTS = ("section", "hide", "connect_timeout", "send_timeout", "read_timeout", "next_upstream",
         "next_upstream_tries", "next_upstream_timeout", "ignore_headers", "limit_rate", "bind")


def take(plan, section, default_hide: frozenset) -> None:
    plan.section = section
    plan.hide = (default_hide | section.hide_header) - section.pass_header
    plan.connect_timeout = section.connect_timeout
    plan.send_timeout = section.send_timeout
    plan.read_timeout = section.read_timeout
    plan.next_upstream = section.next_upstream
    plan.next_upstream_tries = section.next_upstream_tries
    plan.next_upstream_timeout = section.next_upstream_timeout
    plan.ignore_headers = section.ignore_headers
    plan.limit_rate = section.limit_rate if section.buffering else 0
    plan.bind = section.bind                # proxy/bind.py
