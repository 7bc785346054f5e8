"""What the request phases decide: a small closed set of values that http/phases.py and
http/finalize.py return and http/driver.py `carry_out` alone carries out.

  ACCESS              go on with the location's access phase (the phases found the location
                      and ran its rewrite ops; the driver runs `phases.access`)
  a content handler   the location's `conf.content` (a callable) after the access phase: the
                      driver calls it; it writes its own response through the front end
  PRECONTENT          the location's precontent steps (try_files, mirror), then its content
                      handler
  ReturnOp            the rewrite module's `return code [text]`: the config op itself
  Redirect            `rewrite ... redirect|permanent`, the slash redirect, an error_page
                      to a URL: a 3xx with Location (the status page as its body)
  Finalize(status)    a status that the location's error_page may turn into a redirect, an
                      internal redirect or a named location; else its status page
  Page(status)        a status page without error_page (the redirect-cycle 500, a bad URI's
                      400, 444 closes)
  InternalRedirect    search the location again for a new URI (error_page, try_files, index,
                      X-Accel-Redirect): counted, the URI as written
  NamedLocation(name) run a named location's phases (error_page, try_files, X-Accel-Redirect)
  Delay(seconds, then)  auth_delay: wait, then carry out `then`
  SUSPENDED           an access step goes on later by itself (auth_request, a limit_req delay)
  DONE (None)         the request went on by itself (a precontent step took it over)

The common paths allocate nothing: ACCESS, PRECONTENT, SUSPENDED and DONE are constants, the
content handler and ReturnOp are the location's own objects, and Finalize and Page come from
tables made once (`FINALIZE[404]`, `PAGE[500]`). Only rare paths make a Redirect,
InternalRedirect, NamedLocation or Delay.
"""
from __future__ import annotations


class _Constant:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ACCESS = _Constant("ACCESS")
PRECONTENT = _Constant("PRECONTENT")
SUSPENDED = -1          # also what an access step returns when it goes on by itself
DONE = None


class Finalize:
    """A status for ngx_http_special_response_handler: error_page, else the status page."""
    __slots__ = ("status",)

    def __init__(self, status: int) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"Finalize({self.status})"


class Page:
    """A status page as it is, without error_page (nginx's ngx_http_finalize_request with a
    special response after the error pages are done, or before a location is known)."""
    __slots__ = ("status",)

    def __init__(self, status: int) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"Page({self.status})"


FINALIZE = tuple(Finalize(s) for s in range(1000))
PAGE = tuple(Page(s) for s in range(1000))


class Redirect:
    """A 3xx to `location` (made absolute by respond.py when it starts with "/")."""
    __slots__ = ("code", "location")

    def __init__(self, code: int, location: str) -> None:
        self.code = code
        self.location = location

    def __repr__(self) -> str:
        return f"Redirect({self.code}, {self.location!r})"


class InternalRedirect:
    """nginx's ngx_http_internal_redirect: `path` (as written) and `args` replace the
    request's (args None: none, unless keep_args); counted (500 past 10)."""
    __slots__ = ("path", "args", "keep_args")

    def __init__(self, path: str, args, keep_args: bool = False) -> None:
        self.path = path
        self.args = args
        self.keep_args = keep_args

    def __repr__(self) -> str:
        return f"InternalRedirect({self.path!r}, {self.args!r})"


class NamedLocation:
    """nginx's ngx_http_named_location: the location `name` ("@...") of the request's server."""
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"NamedLocation({self.name!r})"


class Delay:
    """Wait `seconds`, then carry out `then` (auth_delay before a 401)."""
    __slots__ = ("seconds", "then")

    def __init__(self, seconds: float, then) -> None:
        self.seconds = seconds
        self.then = then

    def __repr__(self) -> str:
        return f"Delay({self.seconds}, {self.then!r})"
