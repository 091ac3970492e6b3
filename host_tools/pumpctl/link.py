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
        self.replies = {}             # request id -> (code, payload) not yet waited for
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

    def request(self, code, payload=b"", retries=None, timeout_s=None):
        """Send one request; returns the reply payload.  Raises PumpError.

        Reads are retried on timeout with the same request id; a write is sent once
        (``retries=0``): its sequence number makes a resent frame a replay."""
        retries = self.retries if retries is None else retries
        # one id per logical request: a retry reuses it, so a late reply still matches
        rid = self.new_id()
        for _ in range(retries + 1):
            self.send(rid, code, payload)
            try:
                return self.wait(rid, code, time.monotonic() + (timeout_s or self.timeout_s))
            except PumpError as e:
                if e.code != "TIMEOUT":
                    raise
        raise PumpError("TIMEOUT", "no reply from %s after %d attempt%s" %
                        (self.port, retries + 1, "s" if retries else ""))

    # ---- pipelined requests (library load): send several, then match replies by id ------
    def new_id(self):
        self.next_id = (self.next_id + 1) & 0xFFFF
        return self.next_id

    def send(self, rid, code, payload=b""):
        self.send_raw(p.encode_frame(rid, code, payload))

    def wait(self, rid, code, deadline):
        """The reply payload to request ``rid`` before ``deadline``; replies to other
        requests met on the way are kept for ``wait`` calls about them."""
        while True:
            if rid in self.replies:
                reply_code, reply_payload = self.replies.pop(rid)
            else:
                item = self.read_frame(deadline)
                if item is None:
                    raise PumpError("TIMEOUT", "no reply from %s" % self.port)
                if isinstance(item, p.FrameError):
                    continue          # a garbled reply: the caller may retry
                reply_id, reply_code, reply_payload = item
                if reply_id != rid:
                    self.replies[reply_id] = (reply_code, reply_payload)
                    if len(self.replies) > 256:      # stale replies nobody waits for
                        self.replies.pop(next(iter(self.replies)))
                    continue
            if reply_code == p.ERROR:
                err, name, message = p.parse_error(reply_payload)
                raise PumpError(name, message)
            if reply_code != (code | p.REPLY):
                raise PumpError("PROTOCOL", "reply code 0x%02x to command 0x%02x" %
                                (reply_code, code))
            return reply_payload

    # ---- commands ---------------------------------------------------------
    def identify(self):
        return self.request(p.IDENTIFY).decode()

    def status(self):
        return p.decode_status(self.request(p.STATUS))

    def key_status(self):
        """Which keys the pump holds (fingerprints only), its key prompt and lockout."""
        payload = self.request(p.KEY_STATUS)
        n = struct.calcsize("<BBHHHB8s8s")
        if len(payload) < n:
            raise PumpError("PROTOCOL", "KEY_STATUS reply of %d bytes" % len(payload))
        flags, prompt, left, failures, lockout, session, tech, fleet = struct.unpack_from(
            "<BBHHHB8s8s", payload, 0)
        return {"tech": bool(flags & 1), "fleet": bool(flags & 2), "prompt": prompt,
                "prompt_left_s": left, "failures": failures, "lockout_s": lockout,
                "session": bool(session), "tech_fp": tech.rstrip(b"\0").decode(),
                "fleet_fp": fleet.rstrip(b"\0").decode(),
                "store": payload[n:].decode(errors="replace")}

    def library_info(self):
        """The active library (id 0 = none) and any load in progress on the pump."""
        payload = self.request(p.LIBRARY_INFO)
        fmt = "<IIIHBBIIB"
        n = struct.calcsize(fmt)
        if len(payload) < n:
            raise PumpError("PROTOCOL", "LIBRARY_INFO reply of %d bytes" % len(payload))
        lib_id, version, created, entries, areas, slot, received, size, name_len = \
            struct.unpack_from(fmt, payload, 0)
        return {"library_id": lib_id, "version": version, "created_s": created,
                "entries": entries, "care_areas": areas,
                "slot": None if slot == 0xFF else slot, "load_received": received,
                "load_size": size, "name": payload[n:n + name_len].decode(errors="replace"),
                "note": payload[n + name_len:].decode(errors="replace")}

    def log_read(self, from_seq, max_count):
        """(last_seq on the pump, [raw records]) starting at from_seq."""
        _, last_seq, records = self.log_window(from_seq, max_count)
        return last_seq, records

    def log_window(self, from_seq, max_count):
        """(first_seq still kept, last_seq, [raw records]) starting at from_seq.

        first_seq comes from the reply's u32 trailer; a pump without it (no
        ring) keeps everything from 1."""
        return parse_log_window(self.request(p.LOG_READ, struct.pack("<IH", from_seq,
                                                                       max_count)))

    # ---- pipelined log reads (logs pull): several LOG_READs in flight ----------------
    def log_window_send(self, from_seq, max_count):
        """Send LOG_READ(from_seq, max_count) without waiting; returns its request id
        for ``log_window_wait``.  The pump answers every frame it reads, in order."""
        rid = self.new_id()
        self.send(rid, p.LOG_READ, struct.pack("<IH", from_seq, max_count))
        return rid

    def log_window_wait(self, rid, from_seq, max_count, retries=None):
        """The reply to ``log_window_send`` as ``log_window`` gives it.  On a timeout
        the request is resent with the same id (a read: idempotent), like ``request``."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                self.send(rid, p.LOG_READ, struct.pack("<IH", from_seq, max_count))
            try:
                return parse_log_window(self.wait(rid, p.LOG_READ,
                                                  time.monotonic() + self.timeout_s))
            except PumpError as e:
                if e.code != "TIMEOUT":
                    raise
        raise PumpError("TIMEOUT", "no reply from %s after %d attempt%s" %
                        (self.port, retries + 1, "s" if retries else ""))

    def forget(self, rid):
        """Drop a reply nobody will wait for (a pipelined request given up)."""
        self.replies.pop(rid, None)


def parse_log_window(payload):
    """A LOG_READ reply payload -> (first_seq still kept, last_seq, [raw records])."""
    if len(payload) < 6:
        raise PumpError("PROTOCOL", "LOG_READ reply of %d bytes" % len(payload))
    last_seq, n = struct.unpack_from("<IH", payload, 0)
    body = payload[6:]
    size = 32
    first_seq = 1
    if len(body) == n * size + 4:
        (first_seq,) = struct.unpack_from("<I", body, n * size)
        body = body[:n * size]
    if len(body) != n * size:
        raise PumpError("PROTOCOL", "LOG_READ said %d records but sent %d bytes" %
                        (n, len(body)))
    return first_seq, last_seq, [body[i * size:(i + 1) * size] for i in range(n)]
