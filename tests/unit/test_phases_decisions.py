"""The request phases without a socket: a fake front end (tests/harness/fake_frontend.py)
feeds requests to http/phases.py and records each decision http/driver.py carries out, and
the answer respond.py writes."""
from __future__ import annotations

import functools

import pytest

from ngate.config.model import ReturnOp
from ngate.http import driver, modules
from ngate.http.context import RequestContext
from ngate.http.respond import send_response
from ngate.http.decisions import (ACCESS, FINALIZE, PAGE, Delay, InternalRedirect,
                                  NamedLocation, Redirect)
from tests.harness.fake_frontend import FakeFrontEnd
from tests.unit._config_helpers import load_http


def front_end(tmp_path, server: str) -> FakeFrontEnd:
    return FakeFrontEnd(load_http(tmp_path, "server {\n listen 127.0.0.1:8080;\n"
                                            " server_name localhost;\n" + server + "\n}"))


def kinds(decisions) -> list:
    """Decisions as comparable values (constants and tables as themselves)."""
    out = []
    for d in decisions:
        cls = d.__class__
        if cls is ReturnOp:
            out.append(("return", d.code))
        elif cls is Redirect:
            out.append(("redirect", d.code, d.location))
        elif cls is InternalRedirect:
            out.append(("internal", d.path, d.args))
        elif cls is NamedLocation:
            out.append(("named", d.name))
        elif cls is Delay:
            out.append(("delay", d.seconds, d.then))
        else:
            out.append(d)
    return out


def test_return(tmp_path):
    fe = front_end(tmp_path, 'location / { return 200 "ok\\n"; }')
    ctx = fe.request("GET", "/")
    assert kinds(fe.decisions) == [("return", 200)]
    assert fe.status_line() == "HTTP/1.1 200 OK"
    assert fe.body() == b"ok\n"
    assert fe.finished == [ctx] and fe.runtime.logged == [200]


def test_return_is_the_config_op_itself(tmp_path):
    """The common path allocates no decision: a `return` is its ReturnOp."""
    fe = front_end(tmp_path, 'location / { return 204; }')
    ctx = fe.request("GET", "/")
    assert fe.decisions[0] is ctx.conf.rewrite.ops[0]
    fe.request("GET", "/")
    assert fe.decisions[1] is fe.decisions[0]



@pytest.mark.parametrize("directive, body", [
    ('return 200 "ok\\n";', b"ok\n"),
    ('return 404 "caf\xe9";', "caf\xe9".encode("utf-8")),    # the file's bytes, as written
    ('return 200 "";', b""),
    ('return 200 "$uri";', None),               # rendered per request
    ("return 204;", None),
    ("return 444;", None),
    ('return 302 "/elsewhere";', None),         # a redirect: Location, not a body
    ('return 301 "text";', None),
])
def test_return_body_compiled(tmp_path, directive, body):
    """ReturnOp.body, made when the config compiles (a fixed text's bytes, which
    driver.start_request sends as they are), is what _return, the general way, sends."""
    fe = front_end(tmp_path, "location / { %s }" % directive)
    ctx = fe.request("GET", "/x.txt")           # the general way (driver.answer, _return)
    op = ctx.conf.rewrite.ops[0]
    assert op.body == body
    if body is None:
        return
    compiled = front_end(tmp_path, "location / { %s }" % directive)
    cctx = RequestContext(compiled, "GET", "/x.txt", "1.1", [(b"Host", b"localhost")],
                          {b"host": b"localhost"})
    driver.start_request(cctx, None)            # the compiled body's way
    assert compiled.body() == fe.body() == body
    for name in ("Content-Type", "Content-Length", "Connection"):
        assert compiled.header(name) == fe.header(name)
    assert compiled.status_line() == fe.status_line()
    assert compiled.finished == [cctx]

def test_rewrite_redirect(tmp_path):
    fe = front_end(tmp_path, "location / { rewrite ^/old/(.*)$ /new/$1 permanent; }")
    fe.request("GET", "/old/page")
    assert kinds(fe.decisions) == [("redirect", 301, "/new/page")]
    assert fe.status_line() == "HTTP/1.1 301 Moved Permanently"
    assert fe.header("Location") == "http://localhost:8080/new/page"


def test_error_page_to_a_uri(tmp_path):
    fe = front_end(tmp_path, "error_page 404 /oops.html;\n"
                             "location / { return 404; }\n"
                             'location = /oops.html { return 200 "sorry"; }')
    ctx = fe.request("GET", "/missing")
    assert kinds(fe.decisions) == [("return", 404), FINALIZE[404],
                                   ("internal", "/oops.html", None), ("return", 200)]
    assert fe.status_line() == "HTTP/1.1 404 Not Found"     # the error_page keeps the status
    assert fe.body() == b"sorry"
    assert ctx.uri == "/oops.html" and ctx.internal


def test_error_page_to_a_named_location(tmp_path):
    fe = front_end(tmp_path, "location / { error_page 403 = @fallback; return 403; }\n"
                             'location @fallback { return 200 "named"; }')
    fe.request("POST", "/x")
    assert kinds(fe.decisions) == [("return", 403), FINALIZE[403], ("named", "@fallback"),
                                   ("return", 200)]
    assert fe.status_line() == "HTTP/1.1 200 OK"            # "=" takes the target's status
    assert fe.body() == b"named"


def test_redirect_cycle_500(tmp_path):
    fe = front_end(tmp_path, "location / { rewrite ^ /a last; }\n"
                             "location /a { rewrite ^ /b last; }\n"
                             "location /b { rewrite ^ /a last; }")
    ctx = fe.request("GET", "/")
    assert kinds(fe.decisions) == [FINALIZE[500], PAGE[500]]
    assert ctx.redirects == 11
    assert fe.status_line() == "HTTP/1.1 500 Internal Server Error"


def test_internal_redirect_cycle_500(tmp_path):
    """error_page to a location that errs again: each internal redirect is counted, the 11th
    is a status page (no error_page)."""
    fe = front_end(tmp_path, "recursive_error_pages on;\nerror_page 404 /again;\n"
                             "location / { return 404; }")
    fe.request("GET", "/")
    assert fe.decisions[-1] is PAGE[500]
    assert kinds(fe.decisions).count(("internal", "/again", None)) == 11
    assert fe.status_line() == "HTTP/1.1 500 Internal Server Error"


def test_internal_location_404(tmp_path):
    fe = front_end(tmp_path, 'location /private { internal; return 200 "secret"; }')
    fe.request("GET", "/private")
    assert kinds(fe.decisions) == [FINALIZE[404], PAGE[404]]
    assert fe.status_line() == "HTTP/1.1 404 Not Found"
    assert b"secret" not in fe.out


def test_body_too_large_413(tmp_path):
    fe = front_end(tmp_path, 'client_max_body_size 10;\nlocation / { return 200 "ok"; }')
    ctx = fe.request("POST", "/", headers=[("Content-Length", "11")], content_length=11)
    assert kinds(fe.decisions) == [FINALIZE[413], PAGE[413]]
    assert fe.status_line() == "HTTP/1.1 413 Request Entity Too Large"
    assert ctx.keep_alive is False
    fe2 = front_end(tmp_path, 'client_max_body_size 10;\nlocation / { return 200 "ok"; }')
    fe2.request("POST", "/", headers=[("Content-Length", "10")], content_length=10)
    assert kinds(fe2.decisions) == [("return", 200)]


def test_slash_redirect(tmp_path):
    fe = front_end(tmp_path, "location /app/ { proxy_pass http://127.0.0.1:9; }")
    fe.request("GET", "/app?x=1")
    assert kinds(fe.decisions) == [("redirect", 301, "/app/?x=1")]
    assert fe.status_line() == "HTTP/1.1 301 Moved Permanently"
    assert fe.header("Location") == "http://localhost:8080/app/?x=1"


def test_access_deny(tmp_path):
    fe = front_end(tmp_path, 'location / { deny all; empty_gif; }')
    fe.request("GET", "/")
    assert kinds(fe.decisions) == [ACCESS, FINALIZE[403], PAGE[403]]
    assert fe.status_line() == "HTTP/1.1 403 Forbidden"


def test_access_allow_goes_to_the_content_handler(tmp_path):
    """ACCESS gives the location's content handler itself (no decision object)."""
    fe = front_end(tmp_path, "location / { allow 127.0.0.1; deny all; empty_gif; }")
    ctx = fe.request("GET", "/")
    assert fe.decisions == [ACCESS, ctx.conf.content]
    assert fe.status_line() == "HTTP/1.1 200 OK"
    assert fe.header("Content-Type") == "image/gif"


def test_auth_delay(tmp_path):
    users = tmp_path / "htpasswd"
    users.write_text("alice:{PLAIN}secret\n")
    fe = front_end(tmp_path, f'location / {{ auth_basic "zone"; auth_basic_user_file {users};\n'
                             ' auth_delay 2s; empty_gif; }')
    fe.request("GET", "/")
    assert kinds(fe.decisions) == [ACCESS, ("delay", 2.0, FINALIZE[401])]
    assert fe.out == b"" and len(fe.runtime.loop.timers) == 1
    assert fe.runtime.loop.timers[0][0] == 2.0
    fe.fire()                           # the delay ends: the 401 goes out
    assert fe.status_line() == "HTTP/1.1 401 Unauthorized"
    assert fe.header("WWW-Authenticate") == 'Basic realm="zone"'


def test_auth_delay_client_gone(tmp_path):
    users = tmp_path / "htpasswd"
    users.write_text("alice:{PLAIN}secret\n")
    fe = front_end(tmp_path, f'location / {{ auth_basic "zone"; auth_basic_user_file {users};\n'
                             ' auth_delay 2s; empty_gif; }')
    ctx = fe.request("GET", "/")
    ctx.logged = True                   # the client left meanwhile (its 499 logged)
    fe.fire()
    assert fe.out == b""


def test_no_auth_delay_answers_at_once(tmp_path):
    users = tmp_path / "htpasswd"
    users.write_text("alice:{PLAIN}secret\n")
    fe = front_end(tmp_path, f'location / {{ auth_basic "zone"; auth_basic_user_file {users};\n'
                             ' empty_gif; }')
    fe.request("GET", "/")
    assert kinds(fe.decisions) == [ACCESS, FINALIZE[401], PAGE[401]]
    assert fe.runtime.loop.timers == []
    assert fe.status_line() == "HTTP/1.1 401 Unauthorized"


class _Handlers:
    """Content handlers that are not plain functions (a compiled build's functions are not
    FunctionType either)."""

    def __init__(self) -> None:
        self.calls: list = []

    def method(self, ctx) -> None:
        self.calls.append(ctx.uri)
        send_response(ctx, 200, b"handled\n", b"text/plain")

    def __call__(self, ctx) -> None:
        self.method(ctx)


def _with_handler(handler):
    return lambda conf: handler


@pytest.mark.parametrize("kind", ["bound method", "partial", "callable object"])
@pytest.mark.parametrize("location", [
    "location / { }",                                   # start_request's fast path
    "location / { allow all; }",                        # after the access steps
    "location / { error_page 404 = /h; return 404; } location = /h { }",   # carry_out
])
def test_any_callable_content_handler(tmp_path, monkeypatch, kind, location):
    """driver.start_request and carry_out call the location's handler whatever callable it
    is (it was recognised by FunctionType alone: a bound method or partial gave a 500)."""
    handlers = _Handlers()
    handler = {"bound method": handlers.method, "partial": functools.partial(_Handlers.method,
               handlers), "callable object": handlers}[kind]
    monkeypatch.setattr(modules.static, "content_handler", _with_handler(handler))
    fe = front_end(tmp_path, location)
    ctx = RequestContext(fe, "GET", "/x", "1.1", [(b"Host", b"localhost")],
                         {b"host": b"localhost"})
    driver.start_request(ctx, None)
    assert fe.status_line() == "HTTP/1.1 200 OK", bytes(fe.out)
    assert fe.body() == b"handled\n"
    assert handlers.calls == [ctx.uri]
