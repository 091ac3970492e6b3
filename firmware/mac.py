"""HMAC-SHA256 (RFC 2104) over ``hashlib``: MicroPython has no ``hmac`` module.

Owns the one HMAC implementation the pump uses: drug-library tags
(``firmware/druglib.py``, SR-LIB-2) and the service link's login answers and
per-frame MACs (``firmware/auth.py``, SR-SVC-2).  Portable: MicroPython and
CPython (checked against CPython's ``hmac`` in the tests).

``HmacSha256(key)`` streams one message; ``HmacKey(key)`` keeps the padded key
blocks of a key used many times (a session key MACs every write frame), so
each MAC costs two ``sha256`` objects and no per-byte Python loop.
"""
import hashlib

BLOCK = 64
DIGEST_SIZE = 32


def _pads(key):
    """(inner pad, outer pad) blocks of ``key`` (RFC 2104)."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(BLOCK)
    opad = bytearray(BLOCK)
    n = len(key)
    for i in range(BLOCK):
        k = key[i] if i < n else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    return bytes(ipad), bytes(opad)


class HmacSha256:
    """Streaming HMAC-SHA256: update(data) any number of times, then digest() once."""

    def __init__(self, key, _pads_pair=None):
        ipad, opad = _pads_pair if _pads_pair is not None else _pads(key)
        self._inner = hashlib.sha256(ipad)
        self._outer_pad = opad

    def update(self, data):
        self._inner.update(data)

    def digest(self):
        outer = hashlib.sha256(self._outer_pad)
        outer.update(self._inner.digest())
        return outer.digest()


class HmacKey:
    """A key that MACs many messages: its pads are computed once."""

    def __init__(self, key):
        self._pads = _pads(key)

    def new(self):
        return HmacSha256(None, self._pads)

    def mac(self, *parts):
        """HMAC-SHA256 of the concatenation of ``parts`` (bytes-like)."""
        h = HmacSha256(None, self._pads)
        for part in parts:
            h.update(part)
        return h.digest()


def hmac_sha256(key, data):
    mac = HmacSha256(key)
    mac.update(data)
    return mac.digest()


def equal_digest(a, b):
    """Compare two digests in time independent of where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def fingerprint(key):
    """Short public name of a key: first 8 hex digits of its SHA-256 (never the key)."""
    d = hashlib.sha256(key).digest()
    return "%02x%02x%02x%02x" % (d[0], d[1], d[2], d[3])
