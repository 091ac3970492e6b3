"""What is running and what was delivered, on flash, for the power-loss resume (SR-TH-5).

Owns the progress record: after a power loss or reset the pump does not resume
by itself; at boot it reads this record and, when a therapy was running or
paused, offers it (``firmware/resume_screen.py``: shown, logged, resumed only on
a confirming key press).  The record is a small JSON document::

    {"state": "running"|"paused"|"done"|"none", "delivered_ul": .., "kvo_ul": ..,
     "t_rtc_s": .., "seq": ..,
     "spec": {"mode": "continuous", "rate_ul_per_h": .., "vtbi_ul": .., ...} or app.mode.spec,
     "snapshot": app.mode.snapshot() or None,
     "program": [rate, vtbi, kvo, occlusion limit, bubble limit] (app.program, original VTBI),
     "limits": [hard min, hard max rate] (programs from the library), "name": drug line}

stored as a fixed binary head holding the fields that change while delivering
(state, delivered and KVO uL, RTC time, sequence number) followed by the rest as
JSON bytes and a CRC-32, so a periodic save only packs integers into a buffer
made when the therapy started (no allocation but the CRC) and writes it::

    0 "PPRG" | 4 u32 seq | 8 u8 state | 9 u8 format 1 | 10 u16 n | 12 i32 delivered uL
    16 i32 KVO uL | 20 u32 RTC s | 24 JSON n bytes | 24+n CRC-32 of bytes 0..23+n

Two slot files (``prog_a.bin``, ``prog_b.bin``) are written in turn, each save to
the slot that does not hold the newest good record, with the next sequence
number: a power cut at any byte leaves that slot short or failing its CRC and
the other slot's record (the previous save) is read; never a corrupt record.

Cadence: on start, pause, fault stop and completion (``sync``, from the
application's hooks), and while delivering whenever 1 mL was delivered or 60 s
passed since the last save, whichever first (``tick``, every cycle: integer
compares only).  Both thresholds are lowered by what one cycle can add (at the
pump's maximum rate), so the record never lags the core by more than 1 mL or
60 s.  A flash failure is logged (``ERROR``, kind ``ERR_PROGRESS``) and never
stops delivery.  Portable (MicroPython + CPython).
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import struct

import safety_core as sc
from firmware import events
from firmware.crc import crc32

# A leading underscore makes a const() private to this module: MicroPython folds it into
# the code, with no global and no qstr on the heap (PT-8, tests/test_micropython_heap.py).
SLOTS = ("prog_a.bin", "prog_b.bin")
_MAGIC = const(b"PPRG")
_HEAD_FMT = const("<IBBHiiI")  # after the magic: seq, state, format, n, delivered, kvo, rtc
_HEAD = const(24)
_FORMAT = const(1)
_MAX_BODY = const(2048)
_SAVE_EVERY_UL = const(1000)    # SR-TH-5: at most 1 mL ...
_SAVE_PERIOD_MS = const(60000)  # ... or 60 s behind
ERR_PROGRESS = const(16)       # PumpApp._error kind (1, 2, 4 the app's, 8 the menu's)

_NONE = const(0)                # states (record byte 8)
_RUNNING = const(1)
_PAUSED = const(2)
_DONE = const(3)
_STATE_NAMES = const(("none", "running", "paused", "done"))


def continuous_spec(program):
    """The therapy description of a continuous program tuple (app.program)."""
    return {"mode": "continuous", "rate_ul_per_h": program[0], "vtbi_ul": program[1],
            "kvo_ul_per_h": program[2], "occlusion_limit_mmhg": program[3],
            "bubble_limit_ul": program[4]}


class ProgressStore:
    """The progress record of one pump (``app.progress``)."""

    def __init__(self, storage, clock, ustep_volume_pl, cycle_ms):
        self.cycle_ms = cycle_ms
        self.storage = storage
        self.clock = clock
        per_cycle_ul = sc.RATE_MAX_UL_PER_H * cycle_ms // 3600000 + 1
        lag_ul = _SAVE_EVERY_UL - per_cycle_ul if per_cycle_ul < _SAVE_EVERY_UL // 2 \
            else _SAVE_EVERY_UL // 2
        self.every_steps = lag_ul * 1000000 // ustep_volume_pl
        self.period_ms = _SAVE_PERIOD_MS - cycle_ms if cycle_ms < _SAVE_PERIOD_MS // 2 \
            else _SAVE_PERIOD_MS // 2
        self.seq = 0
        self.slot = 0                  # the slot the next save goes to
        self.files = [None, None]      # slot files, kept open once written (no open per save)
        self.buf = None                # the record being kept up to date
        self.crc_view = None           # memoryview of its bytes 0..23+n
        self.state = _NONE
        self.armed = False             # delivering: tick() saves when due
        self.saved_steps = 0
        self.saved_ms = 0
        self.base_ul = 0               # delivered before a power loss, for a resumed therapy
        self.base_doc = None           # the resumed therapy's record
        self.resumed = None            # app.program / app.mode object of the resumed therapy
        self.cur_base_ul = 0
        self.damaged = 0               # slot files present but unreadable at load()
        self.last_error = None

    def lag_ul(self, rate_ul_per_h):
        """The most a record can lag the core at ``rate_ul_per_h`` (uL): what one save
        period and one cycle give, never more than the 1 mL cadence.  A resume counts it
        as given (SR-TH-5: under-deliver, never give a volume twice)."""
        by_time = rate_ul_per_h * (self.period_ms + self.cycle_ms) // 3600000 + 1
        return by_time if by_time < _SAVE_EVERY_UL else _SAVE_EVERY_UL

    # ---- boot ------------------------------------------------------------------------------
    def boot(self, app):
        """At power-on: offer an interrupted therapy (never resumed here: SR-TH-5)."""
        try:
            doc = self.load()
        except Exception as e:               # never a crash at boot
            doc = None
            self._failed(app, e)
        if self.damaged:
            app.log.append(events.PROGRESS_RECORD_DAMAGED, self.damaged, 0)
        spec = doc.get("spec") if doc is not None else None
        if spec is not None and spec.get("mode") == "prime":
            doc = None                       # a prime is never offered: the set may be
            #                                  connected to the patient by now
        if doc is not None and (doc["state"] == "running" or doc["state"] == "paused"):
            from firmware import resume_screen    # only when there is something to offer
            resume_screen.offer(app, doc)
        return doc

    def load(self):
        """The newest good record as its JSON document, or None (nothing, or none good)."""
        best = None
        damaged = 0
        for i in (0, 1):
            rec = self._read(SLOTS[i])
            if rec is None:
                continue
            if rec is False:
                damaged += 1                 # a cut save, or worse: the other slot decides
                continue
            if best is None or rec[0] > best[0]:
                best = rec
                self.slot = 1 - i            # the next save goes to the other slot
        if best is None:
            self.slot = 0
            self.damaged = damaged           # files there, nothing readable: logged
            return None
        self.damaged = 0
        seq, state, delivered, kvo, t_rtc, body = best
        self.seq = seq
        self.state = state
        doc = body if isinstance(body, dict) else {}
        doc["state"] = _STATE_NAMES[state] if state < len(_STATE_NAMES) else "none"
        doc["delivered_ul"] = delivered
        doc["kvo_ul"] = kvo
        doc["t_rtc_s"] = t_rtc
        doc["seq"] = seq
        return doc

    def _read(self, name):
        """(seq, state, delivered, kvo, rtc, body) of a slot; None absent, False damaged."""
        if not self.storage.exists(name):
            return None
        f = self.storage.open(name, "rb")
        try:
            data = f.read(_HEAD + _MAX_BODY + 4)
        finally:
            f.close()
        if len(data) < _HEAD + 4 or data[:4] != _MAGIC:
            return False
        seq, state, fmt, n, delivered, kvo, t_rtc = struct.unpack_from(_HEAD_FMT, data, 4)
        if fmt != _FORMAT or n > _MAX_BODY or len(data) < _HEAD + n + 4:
            return False
        if struct.unpack_from("<I", data, _HEAD + n)[0] != \
                crc32(memoryview(data)[:_HEAD + n]):
            return False
        body = None
        if n:
            import json
            try:
                body = json.loads(bytes(data[_HEAD:_HEAD + n]))
            except ValueError:
                return False
        return seq, state, delivered, kvo, t_rtc, body

    # ---- saving ----------------------------------------------------------------------------
    def sync(self, app):
        """The therapy started, paused, stopped on a fault or completed: save now."""
        try:
            phase = app.core.phase
            if phase == sc.PHASE_RUNNING:
                state = _RUNNING
            elif phase == sc.PHASE_PAUSED:
                state = _PAUSED
            elif phase == sc.PHASE_KVO or phase == sc.PHASE_COMPLETE:
                state = _DONE
            else:
                return                       # idle, or programmed and not started
            if state == self.state and state != _RUNNING:
                return
            self._make(app, state)
            self._write(app)
            self.armed = state == _RUNNING
        except Exception as e:               # the record never stops delivery
            self._failed(app, e)

    def tick(self, app, now):
        """Every cycle: save when 1 mL was delivered or 60 s passed since the last save.
        Integer compares only; a save due packs integers into the kept buffer."""
        if self.armed:
            steps = app.core.delivered_steps
            if steps - self.saved_steps >= self.every_steps or (
                    now - self.saved_ms >= self.period_ms and steps != self.saved_steps):
                try:
                    if getattr(app, "mode", None) is not None:
                        self._make(app, _RUNNING)     # the mode's snapshot moves on
                    self._write(app)
                except Exception as e:
                    self.armed = False       # not every cycle again: the next sync retries
                    self._failed(app, e)

    def clear(self, app):
        """The interrupted therapy was discarded: a record saying nothing runs."""
        self.resumed = None
        self.base_doc = None
        self.base_ul = 0
        self._make(app, _NONE, empty=True)
        self._write(app)
        self.armed = False

    def mark_resumed(self, therapy, delivered_ul, doc):
        """``therapy`` (the new app.program tuple or app.mode object) continues the one of
        record ``doc``, which had delivered ``delivered_ul`` before: later records show
        that therapy (its program, name, limits) and the total delivered."""
        self.resumed = therapy
        self.base_ul = delivered_ul
        self.base_doc = doc

    def _make(self, app, state, empty=False):
        """Build the record buffer (JSON part included) for ``state``: allocates."""
        body = b""
        self.cur_base_ul = 0
        if not empty:
            doc = {}
            mode = getattr(app, "mode", None)
            program = app.program
            resumed = self.resumed
            base = self.base_doc
            if resumed is not None and (program is resumed or mode is resumed):
                self.cur_base_ul = self.base_ul   # the same therapy: its original record
                for key in ("spec", "program", "name", "limits"):
                    if key in base:
                        doc[key] = base[key]
            if mode is not None:
                doc["snapshot"] = mode.snapshot()
                if "spec" not in doc:
                    doc["spec"] = mode.spec
            elif program is not None:
                doc["snapshot"] = None
                if "spec" not in doc:
                    doc["spec"] = continuous_spec(program)
            if program is not None and "program" not in doc:
                doc["program"] = list(program)
            therapy = app.therapy
            if therapy is not None:
                doc["name"] = therapy.name_line
                doc["limits"] = [therapy.hard_min_rate_ul_per_h,
                                 therapy.hard_max_rate_ul_per_h]
            import json
            body = json.dumps(doc).encode()
            if len(body) > _MAX_BODY:
                raise ValueError("progress record of %d B" % len(body))
        n = len(body)
        buf = bytearray(_HEAD + n + 4)
        buf[:4] = _MAGIC
        buf[_HEAD:_HEAD + n] = body
        self.buf = buf
        self.crc_view = memoryview(buf)[:_HEAD + n]
        self.state = state

    def _write(self, app):
        """Pack the moving fields into the buffer and write it to the next slot."""
        core = app.core
        buf = self.buf
        n = len(buf) - _HEAD - 4
        self.seq += 1
        steps = core.delivered_steps
        delivered = self.cur_base_ul + core.delivered_ul()
        struct.pack_into(_HEAD_FMT, buf, 4, self.seq, self.state, _FORMAT, n, delivered,
                         core.kvo_ul(), self.clock.rtc_s())
        struct.pack_into("<I", buf, _HEAD + n, crc32(self.crc_view))
        slot = self.slot
        f = self.files[slot]
        if f is None:                        # first save to this slot since boot
            f = self.files[slot] = self.storage.open(SLOTS[slot], "wb")
        else:
            f.seek(0)
        f.write(buf)
        f.flush()
        self.slot = 1 - slot
        self.saved_steps = steps
        self.saved_ms = self.clock.ticks_ms()

    def _failed(self, app, e):
        self.last_error = e
        try:
            app._error(ERR_PROGRESS, e)
        except Exception:
            pass                             # the log's own failure is not this one
