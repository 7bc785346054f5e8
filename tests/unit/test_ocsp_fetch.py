"""ocsp_fetch's request line and its reading of a responder's answer (nginx's
ngx_ssl_ocsp_create_request and ngx_ssl_ocsp_process_status_line/_headers)."""
from __future__ import annotations

import base64
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from ngate.server import ocsp_fetch


class _Log:
    def __init__(self) -> None:
        self.lines = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))


def test_request_is_a_get_with_the_base64_request_escaped():
    request = bytes(range(250, 256)) * 10        # base64 with "+", "/" and "="
    for uri, path in (("/", "/"), ("/ocsp", "/ocsp/"), ("/a/", "/a/")):
        staple = SimpleNamespace(uri=uri, host="ocsp.test")
        head = ocsp_fetch._request_head(staple, request).decode()
        line, host, end = head.split("\r\n", 2)
        method, target, version = line.split(" ")
        assert (method, version, host, end) == ("GET", "HTTP/1.0", "Host: ocsp.test", "\r\n")
        assert target.startswith(path)
        b64 = target[len(path):]
        assert not set("+/=") & set(b64)
        assert base64.b64decode(unquote(b64)) == request


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nConnection: close\r\n\r\n"


def test_200_answer_gives_the_body():
    log = _Log()
    assert ocsp_fetch._response(OK + b"\x30\x03der", log) == b"\x30\x03der"
    assert ocsp_fetch._response(b"HTTP/1.0 200 OK\n\nbody", log) == b"body"   # no Content-Type
    assert log.lines == []


def test_other_status_is_no_response_and_no_log():
    log = _Log()
    assert ocsp_fetch._response(b"HTTP/1.0 404 Not Found\r\n\r\nnope", log) is None
    assert log.lines == []


@pytest.mark.parametrize("data, message", [
    (b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
     'OCSP responder sent invalid "Content-Type" header: "text/html"'),
    (b"SSH-2.0-OpenSSH\r\n", "OCSP responder sent invalid response"),
    (b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n",
     "OCSP responder prematurely closed connection"),
    (b"HTTP/1.", "OCSP responder prematurely closed connection"),
    (b"", "OCSP responder prematurely closed connection"),
])
def test_bad_answers_are_logged_in_nginx_words(data, message):
    log = _Log()
    with pytest.raises(ocsp_fetch.Failed):
        ocsp_fetch._response(data, log)
    assert log.lines == [("error", message)]
