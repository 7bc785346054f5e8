"""Fetching one certificate's OCSP response from its responder, on the worker's event loop
(nginx's ngx_ssl_ocsp_request .. ngx_ssl_ocsp_read_handler and ngx_ssl_stapling_ocsp_handler).

One fetch: the DER request goes base64 (URI-escaped) in `GET <uri>/<request> HTTP/1.0` with a
Host header; the responder's addresses are its IP, or the name resolved with the server's
`resolver` (without one: the addresses found at config time, with nginx's warning each time);
each address is tried in turn (connect, send, read to the close, at most 16 KiB) within 60 s;
a 200 answer whose Content-Type, if any, is application/ocsp-response is verified
(ocsp.verify). The staple keeps a "good" response until its nextUpdate and is refreshed 5 min
before it, at least every hour and at most every 5 min; any failure (logged in nginx's words on
the cycle's log, with its "while requesting certificate status, responder: ..." context) keeps
the previous response and tries again in 5 min.
"""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import time
from urllib.parse import quote

from ngate.observability import error_log
from ngate.server import ocsp

TIMEOUT = 60.0              # staple->timeout
RETRY = 300                 # refresh after an error, and the least time between refreshes
REFRESH = 3600              # the most time between refreshes
_BUFFER = 16384             # ctx->response
_STATUS = re.compile(rb"HTTP/\d+\.\d+ (\d{3})(?: [^\r\n]*)?\r?\n")


class Failed(Exception):
    """This address gave no usable answer (already logged): try the next one."""


class Log:
    """ngx_ssl_ocsp_log_error's context after each line (the certificate's name for a staple;
    a client certificate's check logs on its connection instead)."""
    __slots__ = ("host", "name", "number", "peer")

    def __init__(self, host: str, name: str | None = None, number: int | None = None) -> None:
        self.host, self.name, self.number = host, name, number
        self.peer = None

    def suffix(self) -> str:
        s = f" while requesting certificate status, responder: {self.host}"
        if self.peer:
            s += f", peer: {self.peer}"
        return s + (f', certificate: "{self.name}"' if self.name else "")

    def __call__(self, level: str, message: str) -> None:
        error_log.log(level, message + self.suffix(), self.number)


async def fetch(staple, context) -> None:
    """Fetch, check and keep `staple`'s response (`context`, its SSLContext, stays alive
    meanwhile: the pointers the check uses are its own)."""
    log = Log(staple.host, staple.name)
    der = None
    try:
        der = await ask(staple, log)
    except Failed:
        pass
    except Exception as exc:        # a defect must not end the worker's stapling for good
        log("alert", f"OCSP request failed ({exc!r})")
    now = int(time.time())
    staple.loading = False
    staple.refresh = now + RETRY
    if der is None:
        return
    verdict = ocsp.verify(der, staple.cert, staple.issuer, staple.chain, staple.store,
                          staple.flags)
    if verdict.error:
        log(verdict.level, verdict.error)
        return
    if verdict.status != ocsp.GOOD:
        log("error", f'certificate status "{verdict.status_str()}" in the OCSP response')
        return
    staple.der, staple.valid = der, verdict.valid
    staple.refresh = max(min(int(verdict.valid) - RETRY, now + REFRESH), now + RETRY)


async def ask(staple, log: Log) -> bytes | None:
    """The body of the first address's 200 answer, None for another status; Failed when
    none answered. `staple`: cert, issuer, host, port, uri, addrs, resolver, resolver_timeout."""
    request = ocsp.request_der(staple.cert, staple.issuer)
    if request is None:
        log("crit", ocsp.ssl_errors("i2d_OCSP_REQUEST() failed"))
        raise Failed
    head = _request_head(staple, request)
    for addr in await _addresses(staple, log):
        log.peer = _peer_name(addr, staple.port)
        try:
            return await asyncio.wait_for(_exchange(addr, staple.port, head, log), TIMEOUT)
        except Failed:
            continue
        except asyncio.TimeoutError:
            log("error", "OCSP responder timed out (110: Connection timed out)")
    raise Failed


def _request_head(staple, request: bytes) -> bytes:
    uri = staple.uri if staple.uri.endswith("/") else staple.uri + "/"
    b64 = quote(base64.b64encode(request).decode(), safe="")
    return (f"GET {uri}{b64} HTTP/1.0\r\nHost: {staple.host}\r\n\r\n").encode("latin-1")


async def _addresses(staple, log: Log) -> tuple:
    """ngx_ssl_ocsp_request's resolution: an IP as it is, a name with the resolver."""
    try:
        ipaddress.ip_address(staple.host.strip("[]"))
        return (staple.host.strip("[]"),)
    except ValueError:
        pass
    if staple.resolver is None:
        if not staple.addrs:
            log("error", f"no resolver defined to resolve {staple.host}")
            raise Failed
        log("warn", f"no resolver defined to resolve {staple.host}")
        return staple.addrs
    code, addrs = await _resolve(staple)
    if code:
        from ngate.resolver import wire
        log("error", f"{staple.host} could not be resolved ({code}: {wire.strerror(code)})")
        raise Failed
    return tuple(addrs)


async def _resolve(staple) -> tuple:
    from ngate.resolver.client import Waiter
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    resolver = staple.resolver.runtime(loop)

    def finished(_waiter, code, addrs) -> None:
        if not done.done():
            done.set_result((code, addrs))

    waiter = Waiter(staple.host, finished)
    resolver.resolve(waiter, staple.resolver_timeout)
    try:
        return await done
    finally:
        waiter.cancel()
        resolver.done()


async def _exchange(addr: str, port: int, head: bytes, log: Log) -> bytes | None:
    try:
        reader, writer = await asyncio.open_connection(addr, port)
    except OSError as err:
        # nginx's non-blocking connect() is "in progress": the error comes with the first
        # read, and the read ends before a status line
        log("error", f"recv() failed {error_log.os_error(err)}")
        log("error", "OCSP responder prematurely closed connection")
        raise Failed from None
    try:
        writer.write(head)
        data = b""
        while len(data) < _BUFFER:
            chunk = await reader.read(_BUFFER - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as err:
        log("error", f"recv() failed {error_log.os_error(err)}")
        raise Failed from None
    finally:
        writer.close()
    return _response(data, log)


def _response(data: bytes, log: Log) -> bytes | None:
    """ngx_ssl_ocsp_process_status_line, _headers and _body on the whole answer."""
    m = _STATUS.match(data)
    if m is None:
        if b"\n" not in data and b"HTTP/".startswith(data[:5]):
            log("error", "OCSP responder prematurely closed connection")
        else:
            log("error", "OCSP responder sent invalid response")
        raise Failed
    at = m.end()
    while True:
        end = data.find(b"\n", at)
        if end < 0:
            log("error", "OCSP responder prematurely closed connection")
            raise Failed
        line = data[at:end].rstrip(b"\r")
        at = end + 1
        if not line:
            break
        name, colon, value = line.partition(b":")
        if not colon or not name or b" " in name:
            log("error", "OCSP responder sent invalid response")
            raise Failed
        value = value.strip(b" \t")
        if name.lower() == b"content-type" and value.lower() != b"application/ocsp-response":
            log("error", 'OCSP responder sent invalid "Content-Type" header: '
                         f'"{value.decode("latin-1")}"')
            raise Failed
    return data[at:] if m.group(1) == b"200" else None


def _peer_name(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
