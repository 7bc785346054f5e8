"""`ngate explain`: how the configuration routes one request, and why, from the compiled config
alone (no socket is opened, no process started).

    ngate explain [-c nginx.conf] [-p prefix] [-g directives] [-X METHOD] [-H 'Name: value']... URL

It prints the listen socket, the server (exact name, wildcard, regex or default server), the
location (modifier, pattern, file:line, and the candidates that lost), the rewrite ops that run
first, and what the content handler will do: the upstream request line and headers of a
proxy_pass, the FastCGI SCRIPT_FILENAME and whether it exists, the file a static URI maps to;
then warnings about the WebSocket recipe, proxy_pass URIs and PHP locations.
"""
from __future__ import annotations

import argparse
import sys

from ngate.cli import Options, make_loader, resolve_paths
from ngate.errors import ConfigError
from ngate.explain.phases import Explainer
from ngate.explain.request import UsageError, parse_request
from ngate.explain.route import NotRouted
from ngate.observability import error_log

EXIT_ROUTED, EXIT_CONFIG, EXIT_USAGE, EXIT_NOT_ROUTED = 0, 1, 2, 3

USAGE = ("ngate explain [-c nginx.conf] [-p prefix] [-g directives] [-X METHOD] "
         "[-H 'Name: value']... URL")
EPILOG = """\
URL is http://host[:port]/path?query, https://... (port 443 by default), ws:// or wss://
(which add Upgrade: websocket and Connection: Upgrade), or a bare /path (the first listen
socket; Host from -H, else the default server's first name). As with curl, -H 'Host: name'
replaces the URL's host in the Host header while the URL still picks the listen socket.

Values known only while a request runs ($remote_addr, $request_time, $upstream_*, ...) are
shown as "depends on $name at request time"; file checks use the file system as it is now.

exit status: 0 routed, 1 the configuration does not load (nginx's file:line message),
2 bad usage, 3 no listen socket takes the connection.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ngate explain", usage=USAGE,
        description="Explain how the configuration routes one request (from the compiled "
                    "config: no socket is opened, no process started).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", dest="conf_file", metavar="nginx.conf",
                   help="configuration file (default: ngate's bundled nginx.conf)")
    p.add_argument("-p", dest="prefix", metavar="prefix",
                   help="prefix path (default: the current directory)")
    p.add_argument("-g", dest="directives", metavar="directives", default="",
                   help="global directives out of the configuration file")
    p.add_argument("-X", dest="method", metavar="METHOD", default="GET",
                   help="request method (default: GET)")
    p.add_argument("-H", dest="headers", metavar="'Name: value'", action="append", default=[],
                   help="a request header (repeatable)")
    p.add_argument("url", metavar="URL", help="http(s)://host[:port]/path?query, ws(s)://..., "
                                               "or /path")
    return p


def run(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)            # exits 2 on bad usage, 0 for -h
    try:
        req = parse_request(args.url, args.method.upper(), args.headers)
    except UsageError as err:
        p.print_usage(sys.stderr)
        sys.stderr.write(f"ngate explain: error: {err}\n")
        return EXIT_USAGE
    prefix, conf_file = resolve_paths(Options(prefix=args.prefix, conf_file=args.conf_file))
    try:
        config = make_loader(conf_file, prefix, args.directives)()
    except ConfigError as err:
        error_log.emerg(str(err))
        return EXIT_CONFIG
    try:
        report = Explainer(config, req).run()
    except NotRouted as err:
        sys.stdout.write(f"not routed: {err}\n")
        return EXIT_NOT_ROUTED
    sys.stdout.write(report.text())
    return EXIT_ROUTED

