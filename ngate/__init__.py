"""ngate: a reverse proxy that speaks nginx's configuration language, WebSocket first."""
__version__ = "0.1.0"
NGINX_VERSION = "1.22.1"   # the nginx whose behaviour ngate reproduces ($nginx_version)
SERVER_NAME = "ngate"
