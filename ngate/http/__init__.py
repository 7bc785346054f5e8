"""The HTTP core: one request path that every front end drives (nginx's ngx_http_core_module).

  context.py     RequestContext: the one object every phase reads and writes
  phases.py      server and location selection, rewrite, access, internal redirects, named
                 locations: functions that return decisions and write nothing
  decisions.py   the closed set of decisions (ACCESS, the content handler, ReturnOp, Redirect,
                 Finalize, Page, InternalRedirect, NamedLocation, Delay, SUSPENDED)
  finalize.py    a status to error_page or its status page (nginx's special response), decided
  driver.py      carry_out: the one place decisions are carried out (respond.py, the handler,
                 the loop's timers); the entry points of front ends and modules
  rewrite.py     the rewrite module's interpreter: returns what to do, answers nothing itself
  respond.py     the answers the core makes (status pages, redirects, `return`, add_header)
  downstream.py  what a front end reports: head refused, bad body, client gone, timeout
  log.py         the log phase
  modules.py     config compile time: each location's phase handlers, content handler, plans

A front end (server/connection.py: HTTP/1.1; http2/stream.py: an HTTP/2 stream;
proxy/subrequest.py: a subrequest) makes a RequestContext with itself as `ctx.conn` and calls
`phases.start_request`. The driver carries the decisions out through that object only: `write`,
`finish_request(ctx)` (the response is complete: log, keep-alive or close), `abort()`,
`closing`, `transport.pause_reading/resume_reading/close`, `attach_body(req, consumer)`,
`writer` (the handler reading the body), `runtime` (timers, logs), `trace` (None, or
ngate explain's recorder). No module here opens a socket or runs a loop.
"""
