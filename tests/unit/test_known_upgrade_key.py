"""proxy/known_head.py upgrade_key: which 101 heads can go the known way, under which key."""
from ngate.proxy.known_head import upgrade_key

HEAD = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def test_the_accept_value_is_taken_out_of_a_tuple_key():
    key, value = upgrade_key(HEAD)
    assert value == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert key == (HEAD.replace(value, b""),)       # no received head (bytes) can equal it
    other = HEAD.replace(value, b"HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
    assert upgrade_key(other) == (key, b"HSmrc0sMlYUkAGmm5OPpG2HaGWk=")


def test_lower_case_name():
    key, value = upgrade_key(HEAD.replace(b"Sec-WebSocket-Accept", b"sec-websocket-accept"))
    assert value == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" and key is not None


def test_values_that_are_no_digest_are_not_known():
    for bad in (b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=x",
                b"s3pPLMBiTxaQ9kYGzzhZRbK xOo=", b"s3pPLMBiTxaQ9kYGzzhZRbK+xO==",
                b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo= ", b"",
                b"s3pPLMBiTxaQ9k=GzzhZRbK+xOo=", b"s3pPLMBiTxaQ9kYGzzhZRbK-xOo=",
                b"s3pPLMBiTxaQ9kYGzzhZRbK+xOoA", b"s3pPLMBiTxaQ9kYGzzhZRbK+x\nOo="):
        assert upgrade_key(HEAD.replace(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", bad)) == (None, None)
    assert upgrade_key(HEAD.replace(b"Sec-WebSocket-Accept", b"Sec-Websocket-Accept")) \
        == (None, None)      # other spellings: llhttp every time
