"""Service-port server (SR-SVC-1, SR-SVC-2): answers framed requests from ``pumpctl``.

Owns command dispatch on the pump side.  ``poll()`` is called once per firmware
cycle, reads what the ServicePort has (bounded), and answers every frame; every
bad frame (CRC, COBS, oversize, unknown command, bad arguments) gets an ERROR
reply with a code and never raises into the control cycle.

* Open reads, answered here: IDENTIFY, STATUS, LOG_READ.
* Everything else is the technician's business and lives in
  ``firmware/service_admin.py``, imported on the first such frame (a pump nobody
  services does not carry that code on its heap, PT-8): KEY_STATUS and
  LIBRARY_INFO (open), the login (LOGIN_CHALLENGE, LOGIN), KEY_PROVISION (the
  first keys, accepted only with SELECT pressed on the pump within 30 s of the
  prompt ``PhysicalConfirm`` puts on the display), and the writes (LIBRARY_LOAD /
  CHUNK / COMMIT, CLOCK_SET, CONFIG_SET, CALIBRATION_SET, KEY_CHANGE, LOGOUT),
  accepted only inside a login session, each frame with a fresh sequence number
  and its MAC (``firmware/auth.py``).

Every error reply is also counted for the event log (SR-LOG-1), rate-limited so that
a flood of bad frames cannot wash the log: the first error of a code is logged at
once (``SERVICE_FRAME_REJECTED``: the code, the command, 1), then the count of
further ones at most once per ``REJECT_WINDOW_MS`` per code, and, when a whole
window passes without one, ``SERVICE_REJECTS_ENDED`` with the episode's total.
Counting is a few list-element increments (no allocation); a flood of any length
writes at most one record per error code per minute plus one at each end.

The wire formats are in ``docs/SERVICE_LINK.md``.  With no frame waiting, no key
prompt up, no session open and no episode of rejected frames open, ``poll()``
allocates nothing.
"""
import struct

import safety_core as sc
from firmware import events
from firmware import protocol as p

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_READ_PER_POLL = 2048          # bytes per cycle: bounded work
FIRMWARE_VERSION = "0.1.0"
MODEL = "AMB-PUMP-1"
LOG_RECORDS_PER_FRAME = 30        # 30 x 32 B = 960 B payload, under MAX_BODY
DEFAULT_SERIAL = "UNSET"          # a board without a SERIAL constant
KEY_SELECT = 2                    # hal.KEY_SELECT
REJECT_WINDOW_MS = const(60000)   # at most one SERVICE_FRAME_REJECTED per error code per window
_REJECT_KINDS = const(11)         # protocol.E_* 1..10; 0 counts any other code


def therapy_active(phase):
    """Delivering, or paused in the middle of a therapy: no library or key change."""
    return phase == sc.PHASE_RUNNING or phase == sc.PHASE_KVO or phase == sc.PHASE_PAUSED


class PhysicalConfirm:
    """The on-pump confirmation of the first service keys: a prompt on the display, and
    SELECT pressed within 30 s.

    Installed over the HAL's buttons and display when the application is built:
    while a prompt is up, SELECT belongs to the prompt (the application does not
    see it, so it cannot also acknowledge an alarm or open a menu) and the
    display shows the prompt instead of the application's screen.  Otherwise
    both pass straight through: one extra call per poll, no allocation."""

    def __init__(self, hal):
        self.buttons = hal.buttons
        self.display = hal.display
        self.lines = None             # the prompt, while one is up
        self.pressed = False
        self.app_lines = None
        hal.buttons = _KeyTap(self)
        hal.display = _DisplayTap(self)

    def prompt(self, lines):
        self.lines = lines
        self.pressed = False
        self.display.show(lines)

    def done(self):
        self.lines = None
        if self.app_lines is not None:
            self.display.show(self.app_lines)


class _KeyTap:
    def __init__(self, confirm):
        self._confirm = confirm

    def poll(self):
        c = self._confirm
        keys = c.buttons.poll()
        if c.lines is not None and keys & KEY_SELECT:
            c.pressed = True
            keys &= ~KEY_SELECT
        return keys

    def __getattr__(self, name):          # press() of the sim's buttons, and the rest
        return getattr(self._confirm.buttons, name)


class _DisplayTap:
    def __init__(self, confirm):
        self._confirm = confirm

    def show(self, lines):
        c = self._confirm
        c.app_lines = lines
        c.display.show(c.lines if c.lines is not None else lines)

    def __getattr__(self, name):          # the sim display's lines, and the rest
        return getattr(self._confirm.display, name)


class ServiceServer:
    """Frame decoder + dispatcher bound to one port, one app and its log.

    ``keys`` (firmware.keystore.KeyStore), ``libraries``
    (firmware.library_store.LibraryStore) and ``confirm`` (PhysicalConfirm) come
    from the application; without them the pump answers reads only."""

    def __init__(self, port, app, log, keys=None, libraries=None, confirm=None):
        self.port = port
        self.app = app
        self.log = log
        self.keys = keys
        self.libraries = libraries
        self.confirm = confirm
        self.decoder = p.FrameDecoder()
        self.frames_ok = 0
        self.frames_bad = 0
        self.auth = None              # firmware.auth.Authenticator, on the first login
        self.session_timed_out = False
        self.pending_keys = None      # (tech key, fleet key, deadline ms) awaiting SELECT
        self.key_prompt = 0           # service_admin.KP_*
        self.serial = getattr(app.hal.board, "SERIAL", None) or DEFAULT_SERIAL
        self.command = 0              # command of the frame being answered (0: undecodable)
        self.rejected = 0             # error replies since boot
        # rejected frames per error code (index = E_* code, 0 = any other), four lists
        # allocated at the first error reply: count since the last record of that code,
        # total of its open episode (0 = none open), ms of its last record, command of
        # the latest such frame
        self._rej = None
        self._rej_open = 0            # episodes open
        self._rej_due = 0             # ms when the earliest open window ends

    def poll(self):
        if self.pending_keys is not None or (self.auth is not None and
                                             self.auth.session is not None):
            from firmware import service_admin
            service_admin.tick(self)  # the key prompt's SELECT or timeout; idle session
        if self._rej_open:
            self._reject_tick(self.app.hal.clock.ticks_ms())
        data = self.port.read(MAX_READ_PER_POLL)
        if not data:
            return
        for item in self.decoder.feed(data):
            if isinstance(item, p.FrameError):
                self.frames_bad += 1
                self.command = 0
                self._error(item.request_id, item.code, item.message)
                continue
            request_id, code, payload = item
            self.command = code
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
        self._rejected(err_code)

    # ---- rejected frames in the log (SR-LOG-1), rate-limited -------------------------------
    def _rejected(self, err_code):
        """Count one error reply; log it at once when it opens an episode of its code."""
        self.rejected += 1
        if self._rej is None:
            self._rej = ([0] * _REJECT_KINDS, [0] * _REJECT_KINDS, [0] * _REJECT_KINDS,
                         [0] * _REJECT_KINDS)
        count, totals, since, cmd = self._rej
        k = err_code if 0 < err_code < _REJECT_KINDS else 0
        cmd[k] = self.command
        if totals[k]:
            totals[k] += 1
            count[k] += 1
            return
        now = self.app.hal.clock.ticks_ms()
        totals[k] = 1
        since[k] = now
        if not self._rej_open:
            self._rej_due = now + REJECT_WINDOW_MS
        self._rej_open += 1
        self._log(events.SERVICE_FRAME_REJECTED, err_code | self.command << 8, 1)

    def _reject_tick(self, now):
        """Every poll while an episode is open: at the end of a code's window, its count
        since the last record; after a window with none, the end of its episode."""
        if now < self._rej_due:
            return
        count, totals, since, cmd = self._rej
        due = 0
        for k in range(_REJECT_KINDS):
            total = totals[k]
            if not total:
                continue
            end = since[k] + REJECT_WINDOW_MS
            if now >= end:
                n = count[k]
                if n:
                    count[k] = 0
                    since[k] = now
                    end = now + REJECT_WINDOW_MS
                    self._log(events.SERVICE_FRAME_REJECTED, k | cmd[k] << 8, n)
                else:
                    totals[k] = 0
                    self._rej_open -= 1
                    if total > 1:
                        self._log(events.SERVICE_REJECTS_ENDED, k, total)
                    continue
            if not due or end < due:
                due = end
        self._rej_due = due

    def _log(self, etype, a, b):
        try:
            self.log.append(etype, a, b)
        except Exception:             # a failing log is not the link's failure
            pass

    def _dispatch(self, request_id, code, payload):
        if code == p.IDENTIFY:
            lib = self.app.library
            text = "%s fw %s core %s log %d sn %s" % (MODEL, FIRMWARE_VERSION,
                                                     self.app.core.backend, self.log.last_seq,
                                                     self.serial)
            if lib is not None:
                text += " library %d v%d" % (lib.library_id, lib.version)
            self._reply(request_id, code, text.encode())
        elif code == p.STATUS:
            lib = self.app.library
            self._reply(request_id, code, p.encode_status(
                self.app.status(), lib.library_id if lib is not None else 0,
                lib.version if lib is not None else 0))
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
            # trailer: u32 first sequence number still kept (older ones were recycled)
            self._reply(request_id, code, head + b"".join(records) +
                        struct.pack("<I", self.log.first_seq))
        elif p.KEY_STATUS <= code <= p.LIBRARY_INFO or code in p.WRITE_COMMANDS or \
                code == p.LOGIN_CHALLENGE or code == p.LOGIN or code == p.KEY_PROVISION:
            from firmware import service_admin
            service_admin.dispatch(self, request_id, code, payload)
        else:
            self._error(request_id, p.E_UNKNOWN_COMMAND, "unknown command 0x%02x" % code)
