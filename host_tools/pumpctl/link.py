"""Service-link client: framed requests with request ids over pyserial.

Owns the host end of the protocol in ``firmware/protocol.py``: sends a request,
waits for the reply with the same request id (ignoring stale frames), retries
idempotent reads on timeout and turns ERROR replies into ``PumpError`` with
the pump's error code and message.
"""
import struct
import time

import serial

from firmware import protocol as p


class PumpError(Exception):
    """A failure talking to the pump; ``code`` is a protocol error name or 'TIMEOUT'/'LINK'."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class PumpLink:
    """One open service port."""

    def __init__(self, port, timeout_s=2.0, baudrate=115200, retries=2):
        try:
            self.ser = serial.Serial(port, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, OSError) as e:
            raise PumpError("LINK", "cannot open %s: %s" % (port, e))
        self.port = port
        self.timeout_s = timeout_s
        self.retries = retries
        self.decoder = p.FrameDecoder()
        self.pending = []
        self.next_id = int(time.time()) & 0x7FFF
        self.bytes_in = 0
        self.bytes_out = 0

    def close(self):
        self.ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.ser.write(data)
        self.bytes_out += len(data)

    def read_frame(self, deadline):
        """Next decoded item (tuple or FrameError) before the deadline, else None."""
        while True:
            if self.pending:
                return self.pending.pop(0)
            if time.monotonic() > deadline:
                return None
            chunk = self.ser.read(4096)
            if chunk:
                self.bytes_in += len(chunk)
                self.pending.extend(self.decoder.feed(chunk))

    def request(self, code, payload=b""):
        """Send one request; returns the reply payload.  Raises PumpError."""
        # one id per logical request: a retry reuses it, so a late reply still matches
        self.next_id = (self.next_id + 1) & 0xFFFF
        rid = self.next_id
        for _ in range(self.retries + 1):
            self.send_raw(p.encode_frame(rid, code, payload))
            deadline = time.monotonic() + self.timeout_s
            while True:
                item = self.read_frame(deadline)
                if item is None:
                    break
                if isinstance(item, p.FrameError):
                    continue          # a garbled reply: wait for the retry
                reply_id, reply_code, reply_payload = item
                if reply_id != rid:
                    continue          # stale reply to an earlier request
                if reply_code == p.ERROR:
                    err, name, message = p.parse_error(reply_payload)
                    raise PumpError(name, message)
                if reply_code != (code | p.REPLY):
                    raise PumpError("PROTOCOL", "reply code 0x%02x to command 0x%02x" %
                                    (reply_code, code))
                return reply_payload
        raise PumpError("TIMEOUT", "no reply from %s after %d attempts" %
                        (self.port, self.retries + 1))

    # ---- commands ---------------------------------------------------------
    def identify(self):
        return self.request(p.IDENTIFY).decode()

    def status(self):
        return p.decode_status(self.request(p.STATUS))

    def log_read(self, from_seq, max_count):
        """(last_seq on the pump, [raw records]) starting at from_seq."""
        payload = self.request(p.LOG_READ, struct.pack("<IH", from_seq, max_count))
        if len(payload) < 6:
            raise PumpError("PROTOCOL", "LOG_READ reply of %d bytes" % len(payload))
        last_seq, n = struct.unpack_from("<IH", payload, 0)
        body = payload[6:]
        size = 32
        if len(body) != n * size:
            raise PumpError("PROTOCOL", "LOG_READ said %d records but sent %d bytes" %
                            (n, len(body)))
        return last_seq, [body[i * size:(i + 1) * size] for i in range(n)]
