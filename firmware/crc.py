"""CRC-32 (IEEE 802.3, the zlib/binascii polynomial) for log records and frames.

Uses the C implementation in ``binascii`` where the port has it; otherwise a
table-driven fallback with the same results.
"""
try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover - ports built without it
    _crc32 = None

if _crc32 is None:  # pragma: no cover
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
else:
    def crc32(data, crc=0):
        return _crc32(data, crc) & 0xFFFFFFFF
