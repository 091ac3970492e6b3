"""Service frames (SR-SVC-1): COBS, CRC, decoder resynchronisation, oversize, errors."""
from firmware import protocol as p


def test_cobs_round_trip_including_zero_runs_and_254_blocks():
    samples = [b"", b"\x00", b"\x00\x00", b"abc", b"a\x00b\x00", bytes(range(256)),
               bytes(254) + b"x", b"\x01" * 254, b"\x01" * 255, b"\x01" * 600 + b"\x00"]
    for data in samples:
        enc = p.cobs_encode(data)
        assert b"\x00" not in enc
        assert p.cobs_decode(enc) == data


def test_frame_round_trip_with_request_id():
    wire = p.encode_frame(0x1234, p.STATUS, b"\x00payload\x00")
    assert wire.endswith(b"\x00") and wire.count(b"\x00") == 1
    items = p.FrameDecoder().feed(wire)
    assert items == [(0x1234, p.STATUS, b"\x00payload\x00")]


def test_split_chunks_and_garbage_between_frames():
    wire = p.encode_frame(1, p.IDENTIFY) + b"\x13\x37garbage\x00" + p.encode_frame(2, p.STATUS)
    dec = p.FrameDecoder()
    items = []
    for i in range(len(wire)):
        items.extend(dec.feed(wire[i:i + 1]))
    assert items[0] == (1, p.IDENTIFY, b"")
    assert isinstance(items[1], p.FrameError)
    assert items[2] == (2, p.STATUS, b"")


def test_bad_crc_is_reported_with_code():
    wire = bytearray(p.encode_frame(7, p.STATUS, b"abc"))
    wire[3] ^= 0x40
    items = p.FrameDecoder().feed(bytes(wire))
    assert len(items) == 1 and isinstance(items[0], p.FrameError)
    assert items[0].code in (p.E_BAD_CRC, p.E_MALFORMED)


def test_oversize_frame_is_refused_and_decoder_resyncs():
    dec = p.FrameDecoder()
    items = dec.feed(b"\x05" * 5000 + b"\x00" + p.encode_frame(9, p.IDENTIFY))
    assert isinstance(items[0], p.FrameError) and items[0].code == p.E_OVERSIZE
    assert items[1] == (9, p.IDENTIFY, b"")


def test_too_short_and_wrong_version_frames():
    items = p.FrameDecoder().feed(p.cobs_encode(b"\x01\x02") + b"\x00")
    assert items[0].code == p.E_MALFORMED
    body = bytearray(b"\x02\x01\x00\x01")
    from firmware.crc import crc32
    import struct
    body.extend(struct.pack("<I", crc32(body)))
    items = p.FrameDecoder().feed(p.cobs_encode(bytes(body)) + b"\x00")
    assert items[0].code == p.E_BAD_VERSION


def test_status_payload_round_trip():
    st = {"phase": 2, "rate_ul_per_h": 10000, "vtbi_ul": 20000, "kvo_ul_per_h": 0,
          "delivered_nl": 123456789, "kvo_nl": 0, "alarm": 1, "alarm_priority": 3,
          "faults": 1, "downstream_mmhg": -5, "battery_mv": 4100, "uptime_ms": 7200000,
          "log_seq": 42}
    assert p.decode_status(p.encode_status(st)) == st


def test_error_payload_parses():
    code, name, message = p.parse_error(p.error_payload(p.E_UNKNOWN_COMMAND, "unknown 0x55"))
    assert code == p.E_UNKNOWN_COMMAND and name == "UNKNOWN_COMMAND"
    assert message == "unknown 0x55"
