"""http/context.py: RequestContext(...) makes a Context with every slot set; the rare state is a
class default a request overrides for itself alone."""
from __future__ import annotations

import time

from ngate.http import context
from ngate.http.context import Context, RequestContext


def test_every_slot_is_set_by_the_factory():
    ctx = RequestContext(None, "GET", "/a", "1.1", (), {})
    for name in Context.__slots__:
        if name != "__dict__":
            getattr(ctx, name)      # an unset slot would raise AttributeError
    assert ctx.http_minor == 1 and ctx.keep_alive and ctx.uri == "/"
    assert RequestContext(None, "GET", "/", "1.0", (), {}).http_minor == 0


def test_rare_state_is_a_default_until_a_request_sets_it():
    a = RequestContext(None, "GET", "/", "1.1", (), {})
    b = RequestContext(None, "GET", "/", "1.1", (), {})
    for name in context._RARE:
        assert name not in Context.__slots__ and hasattr(Context, name)
    assert a.gzip is None and a.error_pages_done is False and a.request_id is None
    a.gzip = "deflate"
    a.error_pages_done = True
    assert (a.gzip, a.error_pages_done) == ("deflate", True)
    assert (b.gzip, b.error_pages_done, Context.gzip) == (None, False, None)


def test_start_wall_is_the_wall_clock_at_start():
    ctx = RequestContext(None, "GET", "/", "1.1", (), {})
    ctx.start -= 5.0        # as if the request began five seconds ago
    assert abs(ctx.start_wall - (time.time() - 5.0)) < 0.5
