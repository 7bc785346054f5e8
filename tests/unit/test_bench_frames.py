"""bench.wsload.masked_frame: the three RFC 6455 length encodings, masked, binary."""
import struct

import pytest

from bench.wsload import masked_frame


@pytest.mark.parametrize("size, head_len", [(0, 2), (64, 2), (125, 2), (126, 4), (65535, 4),
                                            (65536, 10), (1024 * 1024, 10)])
def test_frame_length_encoding(size, head_len):
    frame = masked_frame(size)
    assert len(frame) == head_len + 4 + size       # head, masking key, payload
    assert frame[0] == 0x82                        # FIN + binary
    assert frame[1] & 0x80                         # client frames are masked
    code = frame[1] & 0x7F
    if head_len == 2:
        assert code == size
    elif head_len == 4:
        assert code == 126 and struct.unpack("!H", frame[2:4])[0] == size
    else:
        assert code == 127 and struct.unpack("!Q", frame[2:10])[0] == size
