"""HTTP/2 to clients (nginx's ngx_http_v2_module): a connection wrapper around the `h2` library
(connection.py) and a per-stream adapter (stream.py) that the request phases (http/phases.py)
drive exactly as they drive an HTTP/1.1 connection. Upstreams are spoken to in HTTP/1.x."""
