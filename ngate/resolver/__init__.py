"""nginx's `resolver`: names in proxy_pass / fastcgi_pass with variables resolved per request.

config.py compiles the directive; wire.py is the sans-IO DNS message code; client.py the per-worker
resolver (cache, one query per name, resend, CNAME, timeouts); transport.py its UDP/TCP sockets;
hook.py the request side.
"""
