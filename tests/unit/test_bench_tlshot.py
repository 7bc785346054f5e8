"""bench/tlshot.py's rounds do what they measure: every request went through ngate's TLS path
(TlsTransport on a real SSL object, HttpsConnection) and was answered on the same connection."""
from __future__ import annotations

from bench import tlshot


def test_https_rounds_answer_every_request_on_one_connection():
    # run_https asserts the connection counted every request, stayed open and wrote responses
    assert tlshot.run_https(20) > 0


def test_https_rounds_with_a_browser_sized_head():
    assert tlshot.run_https(20, pad=700) > 0
