"""The harness itself: the raw client's framing and the backend's recording, without a proxy."""
from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request, exchange


def test_backend_records_exact_bytes_and_keeps_alive(backend):
    raw1 = b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\nContent-Length: 3\r\n\r\nabc"
    raw2 = b"GET /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    with Connection(backend.port) as conn:
        conn.send(raw1 + raw2)
        assert conn.read_response().body == b"ok backend\n"
        assert conn.read_response().status == 200
    assert [r.raw for r in backend.requests] == [raw1, raw2]
    assert backend.requests[0].headers[1:3] == [(b"X-Dup", b"1"), (b"x-dup", b"2")]
    assert backend.requests[1].body == b"hi" and backend.requests[1].chunked
    assert backend.connections == 1


def test_client_framings(backend):
    backend.route("/chunked", Reply(chunks=[b"ab", b"cd"]))
    backend.route("/close", Reply(action="close_after", body=b"until close"))
    backend.route("/head", Reply(body=b"not sent for HEAD"))
    chunked = exchange(backend.port, build_request("GET", "/chunked"))[0]
    assert (chunked.framing, chunked.body) == ("chunked", b"abcd")
    close = exchange(backend.port, build_request("GET", "/close"))[0]
    assert (close.framing, close.body) == ("close", b"until close")
    with Connection(backend.port) as conn:
        conn.send(build_request("HEAD", "/head") + build_request("GET", "/chunked"))
        head = conn.read_response("HEAD")
        assert head.body == b"" and head.header("content-length") == b"17"
        assert conn.read_response().body == b"abcd"


def test_interim_responses_and_reset(backend):
    backend.route("/interim", Reply(raw=b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    backend.route("/reset", Reply(action="reset"))
    resp = exchange(backend.port, build_request("GET", "/interim"))[0]
    assert resp.status == 200 and [i.status for i in resp.interim] == [100]
    with Connection(backend.port) as conn:
        conn.send(build_request("GET", "/reset"))
        assert conn.closed_by_peer()
