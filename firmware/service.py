"""Service-port server (SR-SVC-1): answers framed requests from ``pumpctl``.

Owns command dispatch on the pump side.  ``poll()`` is called once per firmware
cycle, reads what the ServicePort has (bounded), and answers every frame:
IDENTIFY, STATUS and LOG_READ are open reads; every bad frame (CRC, COBS,
oversize, unknown command, bad arguments) gets an ERROR reply with a code and
never raises into the control cycle.  Writes (library, config, clock,
calibration) and the challenge-response login (SR-SVC-2) are a later issue:
until then every write command is refused with NOT_AUTHORISED.
"""
import struct

from firmware import protocol as p

MAX_READ_PER_POLL = 2048          # bytes per cycle: bounded work
FIRMWARE_VERSION = "0.1.0"
MODEL = "AMB-PUMP-1"
LOG_RECORDS_PER_FRAME = 30        # 30 x 32 B = 960 B payload, under MAX_BODY


class ServiceServer:
    """Frame decoder + dispatcher bound to one port, one app and its log."""

    def __init__(self, port, app, log):
        self.port = port
        self.app = app
        self.log = log
        self.decoder = p.FrameDecoder()
        self.frames_ok = 0
        self.frames_bad = 0

    def poll(self):
        data = self.port.read(MAX_READ_PER_POLL)
        if not data:
            return
        for item in self.decoder.feed(data):
            if isinstance(item, p.FrameError):
                self.frames_bad += 1
                self._error(item.request_id, item.code, item.message)
                continue
            request_id, code, payload = item
            try:
                self._dispatch(request_id, code, payload)
                self.frames_ok += 1
            except Exception as e:    # never let a request break the control cycle
                self.frames_bad += 1
                self._error(request_id, p.E_MALFORMED, "request failed: %s" % (e,))

    def _reply(self, request_id, code, payload=b""):
        self.port.write(p.encode_frame(request_id, code | p.REPLY, payload))

    def _error(self, request_id, err_code, message):
        self.port.write(p.encode_frame(request_id, p.ERROR, p.error_payload(err_code, message)))

    def _dispatch(self, request_id, code, payload):
        if code == p.IDENTIFY:
            text = "%s fw %s core %s log %d" % (MODEL, FIRMWARE_VERSION,
                                                self.app.core.backend, self.log.last_seq)
            self._reply(request_id, code, text.encode())
        elif code == p.STATUS:
            self._reply(request_id, code, p.encode_status(self.app.status()))
        elif code == p.LOG_READ:
            if len(payload) != 6:
                self._error(request_id, p.E_BAD_ARGS,
                            "LOG_READ takes u32 from_seq + u16 max_count (%d bytes given)"
                            % len(payload))
                return
            from_seq, max_count = struct.unpack("<IH", payload)
            n = min(max_count, LOG_RECORDS_PER_FRAME)
            records = self.log.read(from_seq, n)
            head = struct.pack("<IH", self.log.last_seq, len(records))
            self._reply(request_id, code, head + b"".join(records))
        elif code in p.WRITE_COMMANDS:
            self._error(request_id, p.E_NOT_AUTHORISED,
                        "command 0x%02x needs a technician login" % code)
        else:
            self._error(request_id, p.E_UNKNOWN_COMMAND, "unknown command 0x%02x" % code)
