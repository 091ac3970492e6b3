"""Service protocol frames (SR-SVC-1), shared by the firmware and ``pumpctl``.

Owns the wire format.  A frame on the link is the COBS encoding of a body,
followed by one 0x00 delimiter.  Body:

    u8 version (1) | u16 request id | u8 code | payload ... | u32 CRC-32 (LE)

``code`` is a command (host -> pump) or its reply (``code | 0x80``), or
``ERROR`` (0x7F) whose payload is u8 error code + UTF-8 message.  Bodies are at
most ``MAX_BODY`` bytes; anything longer, undecodable or failing its CRC is
refused with an error reply, never a crash.  Portable (MicroPython + CPython).
"""
import struct

from firmware.crc import crc32

VERSION = 1
MAX_BODY = 1024
HEADER = 4                   # version, request id, code
TRAILER = 4                  # CRC-32

# commands: open reads (docs/SERVICE_LINK.md has every payload)
IDENTIFY = 0x01
STATUS = 0x02
LOG_READ = 0x10              # payload: u32 from_seq, u16 max_count
KEY_STATUS = 0x11            # which keys are set, key prompt state, lockout
LIBRARY_INFO = 0x12          # active library and any load in progress
# login (SR-SVC-2), open: a challenge, then its answer
LOGIN_CHALLENGE = 0x30       # reply: nonce 16 | u32 counter | u16 idle s | serial
LOGIN = 0x31                 # payload: nonce 16 | HMAC 32; reply: pump proof 16 | u16 idle s
# the first keys: open, but only with SELECT pressed on the pump (physical confirmation)
KEY_PROVISION = 0x27         # payload: technician key 32 | fleet key 32
# writes: need a login; payload u32 sequence | body | MAC 16 (firmware/auth.py)
LIBRARY_LOAD = 0x20          # begin or resume a load: u32 size | sha256 32
CONFIG_SET = 0x21
CLOCK_SET = 0x22             # u32 RTC seconds (Unix time, UTC)
CALIBRATION_SET = 0x23
LIBRARY_CHUNK = 0x24         # u32 offset | data
LIBRARY_COMMIT = 0x25        # sha256 32: verify the new slot, then switch to it
KEY_CHANGE = 0x26            # u8 which | tech 32 | fleet 32 (wrapped under the session)
LOGOUT = 0x28
LIBRARY_BEGIN = LIBRARY_LOAD
WRITE_COMMANDS = (LIBRARY_LOAD, CONFIG_SET, CLOCK_SET, CALIBRATION_SET, LIBRARY_CHUNK,
                  LIBRARY_COMMIT, KEY_CHANGE, LOGOUT)
REPLY = 0x80
ERROR = 0x7F

# error codes
E_BAD_CRC = 1
E_MALFORMED = 2
E_OVERSIZE = 3
E_UNKNOWN_COMMAND = 4
E_BAD_ARGS = 5
E_BUSY = 6
E_NOT_AUTHORISED = 7
E_BAD_VERSION = 8
E_REFUSED = 9                # the pump refused the content (a library it cannot accept)
E_STORAGE = 10               # the pump's flash failed; nothing was switched
ERROR_NAMES = {
    E_BAD_CRC: "BAD_CRC", E_MALFORMED: "MALFORMED", E_OVERSIZE: "OVERSIZE",
    E_UNKNOWN_COMMAND: "UNKNOWN_COMMAND", E_BAD_ARGS: "BAD_ARGS", E_BUSY: "BUSY",
    E_NOT_AUTHORISED: "NOT_AUTHORISED", E_BAD_VERSION: "BAD_VERSION",
    E_REFUSED: "REFUSED", E_STORAGE: "STORAGE",
}

# STATUS payload (all little-endian): the base fields, then extensions appended over
# time.  A decoder reads the base and every extension the payload is long enough for,
# and ignores bytes after the ones it knows, so old hosts and old pumps keep working.
STATUS_FMT = "<BIIIIIHBIiIII"
STATUS_FIELDS = ("phase", "rate_ul_per_h", "vtbi_ul", "kvo_ul_per_h", "delivered_nl",
                 "kvo_nl", "alarm", "alarm_priority", "faults", "downstream_mmhg",
                 "battery_mv", "uptime_ms", "log_seq")
# extension 1 (issue 6): the active drug library, 0/0 = none
STATUS_EXT1_FMT = "<II"
STATUS_EXT1_FIELDS = ("library_id", "library_version")


class FrameError(ValueError):
    """A frame that cannot be accepted; ``code`` is an E_* value."""

    def __init__(self, code, message, request_id=0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def cobs_encode(data):
    """Consistent-overhead byte stuffing: the result contains no 0x00."""
    n = len(data)
    out = bytearray(n + 1 + n // 254)      # the longest the encoding can be
    end = _cobs_encode_into(data, n, out)
    if end < len(out):
        out[end:] = b""                     # trimmed in place
    return bytes(out)


def _cobs_encode_into(data, n, out):
    """COBS-encode data[:n] into out[0:]; returns the encoded length.  Writes by index
    into a buffer sized up front (n + 1 + n // 254): no allocation per byte."""
    code_idx = 0
    o = 1
    code = 1
    for i in range(n):
        b = data[i]
        if b == 0:
            out[code_idx] = code
            code_idx = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 0xFF:
                out[code_idx] = code
                code_idx = o
                o += 1
                code = 1
    out[code_idx] = code
    return o


def cobs_decode(data):
    """Inverse of cobs_encode; raises FrameError on an invalid encoding.  Filled by
    index into one buffer of the largest size (the decoding is never longer)."""
    n = len(data)
    out = bytearray(n)
    o = 0
    idx = 0
    while idx < n:
        code = data[idx]
        if code == 0:
            raise FrameError(E_MALFORMED, "zero byte inside a COBS frame")
        end = idx + code
        if end > n:
            raise FrameError(E_MALFORMED, "COBS block runs past the frame end")
        for i in range(idx + 1, end):
            out[o] = data[i]
            o += 1
        idx = end
        if code < 0xFF and idx < n:
            out[o] = 0
            o += 1
    if o < n:
        out[o:] = b""                       # trimmed in place
    return bytes(out)


def encode_frame(request_id, code, payload=b""):
    """Body -> bytes on the wire (COBS + delimiter).

    The body and its encoding are each built in one buffer of their final size
    (PT-8: a STATUS reply is answered within the application cycle)."""
    n = HEADER + len(payload) + TRAILER
    if n > MAX_BODY:
        raise FrameError(E_OVERSIZE, "frame body %d bytes exceeds %d" % (n, MAX_BODY))
    body = bytearray(n)
    struct.pack_into("<BHB", body, 0, VERSION, request_id & 0xFFFF, code)
    body[HEADER:n - TRAILER] = payload
    struct.pack_into("<I", body, n - TRAILER, crc32(memoryview(body)[:n - TRAILER]))
    out = bytearray(n + 2 + n // 254)       # longest encoding + the 0x00 delimiter
    end = _cobs_encode_into(body, n, out)
    out[end] = 0
    if end + 1 < len(out):
        out[end + 1:] = b""
    return bytes(out)


# CRC-32 of a body *including* its little-endian CRC trailer: the same constant for
# every intact body (the CRC's residue), so the check needs no slice of the body
_CRC32_RESIDUE = 0x2144DF1C


def decode_body(encoded):
    """One delimited frame's bytes (without the 0x00) -> (request_id, code, payload)."""
    body = cobs_decode(encoded)
    n = len(body)
    if n < HEADER + TRAILER:
        raise FrameError(E_MALFORMED, "frame of %d bytes is shorter than %d" %
                         (n, HEADER + TRAILER))
    if n > MAX_BODY:
        raise FrameError(E_OVERSIZE, "frame body %d bytes exceeds %d" % (n, MAX_BODY))
    version = body[0]
    request_id = body[1] | (body[2] << 8)
    code = body[3]
    if crc32(body) != _CRC32_RESIDUE:
        raise FrameError(E_BAD_CRC, "CRC mismatch", request_id)
    if version != VERSION:
        raise FrameError(E_BAD_VERSION, "protocol version %d, expected %d" % (version, VERSION),
                         request_id)
    if n == HEADER + TRAILER:
        return request_id, code, b""
    return request_id, code, bytes(memoryview(body)[HEADER:n - TRAILER])


def error_payload(err_code, message):
    return bytes([err_code]) + message.encode()[:200]


def parse_error(payload):
    """(code, name, message) from an ERROR reply payload."""
    if not payload:
        return (0, "UNKNOWN", "")
    code = payload[0]
    return (code, ERROR_NAMES.get(code, "E%d" % code), bytes(payload[1:]).decode())


_REUSE_MAX = 64      # FrameDecoder: frames up to this long reuse the buffer


class FrameDecoder:
    """Splits an incoming byte stream into frames.

    ``feed(chunk)`` returns a list of items: ``(request_id, code, payload)`` for a
    good frame or a ``FrameError`` for a bad one.  An overlong frame is
    discarded up to the next delimiter (resynchronisation)."""

    def __init__(self, max_encoded=MAX_BODY + MAX_BODY // 254 + 2):
        self.buf = bytearray()
        self.max_encoded = max_encoded
        self.overflow = False

    def feed(self, chunk):
        items = []
        buf = self.buf
        for byte in chunk:
            if byte == 0:
                if self.overflow:
                    items.append(FrameError(E_OVERSIZE, "frame longer than %d bytes" %
                                            self.max_encoded))
                elif buf:
                    try:
                        items.append(decode_body(buf))
                    except FrameError as e:
                        items.append(e)
                buf = self._emptied(buf)
                self.overflow = False
            elif not self.overflow:
                if len(buf) >= self.max_encoded:
                    self.overflow = True
                    buf = self._emptied(buf)
                else:
                    buf.append(byte)
        return items

    def _emptied(self, buf):
        """The buffer for the next frame: a short one (every read request) is emptied in
        place and reused, no allocation; a long one is let go, so its room is not held."""
        if len(buf) <= _REUSE_MAX:
            buf[:] = b""
        else:
            buf = self.buf = bytearray()
        return buf


_STATUS_EXT1_FULL = STATUS_FMT + STATUS_EXT1_FMT[1:]


def encode_status(st, library_id=None, library_version=0):
    """STATUS payload of a status dict; with extension 1 (the active library) when
    ``library_id`` is given or the dict has it.  One pack: a STATUS reply is answered
    within the application cycle (PT-8)."""
    if library_id is None:
        if "library_id" not in st:
            return struct.pack(STATUS_FMT, *[st[k] for k in STATUS_FIELDS])
        library_id = st["library_id"]
        library_version = st["library_version"]
    return struct.pack(_STATUS_EXT1_FULL, *[st[k] for k in STATUS_FIELDS], library_id,
                       library_version)


def decode_status(payload):
    """Status dict of a STATUS payload: the base fields, and the library fields when the
    pump sends them (a pump before issue 6 does not)."""
    size = struct.calcsize(STATUS_FMT)
    if len(payload) < size:
        raise FrameError(E_MALFORMED, "status payload %d bytes, expected at least %d" %
                         (len(payload), size))
    st = dict(zip(STATUS_FIELDS, struct.unpack_from(STATUS_FMT, payload, 0)))
    ext = struct.calcsize(STATUS_EXT1_FMT)
    if len(payload) >= size + ext:
        for k, v in zip(STATUS_EXT1_FIELDS, struct.unpack_from(STATUS_EXT1_FMT, payload, size)):
            st[k] = v
    return st
