"""Therapy modes (SR-TH-1): one small module per mode behind one interface.

Owns the shape every mode shares (``Therapy``) and ``make(spec)``, which turns a
JSON-able program description into a mode object, importing only that mode's
module (a pump running one therapy never loads the others).  A mode turns its
spec into a plan of *segments* -- (name, rate uL/h, volume uL) -- whose volumes
add up to the VTBI the safety core enforces; each segment ends on a microstep
in the core (``core.set_rate(rate, until_ul)``), so every phase gets exactly its
volume and the phases exactly the total.  The core, not the mode, enforces the
VTBI, the rolling-hour cap, the 4 h maximum and PCA lockout/counts: a wrong mode
can ask for less, never for more.

The application (firmware/app.py) stays the control cycle: it calls
``mode.on_cycle(app, now_ms)`` once per cycle (allocation-free when nothing
changes), asks the core for a bolus on the BOLUS key (``app.request_bolus``, PCA
only) and reports ``mode.report()``.
Specs (integers, uL, uL/h, s):
  {"mode": "continuous", "rate_ul_per_h", "vtbi_ul", "kvo_ul_per_h"}
  {"mode": "intermittent", "dose_ul", "dose_rate_ul_per_h", "interval_s", "doses",
   "kvo_ul_per_h"}
  {"mode": "pca", "basal_ul_per_h", "bolus_ul", "bolus_rate_ul_per_h", "lockout_s",
   "max_boluses_per_h", "max_1h_ul", "max_4h_ul", "vtbi_ul", "kvo_ul_per_h"}
  {"mode": "tpn", "vtbi_ul", "duration_s", "taper_up_s", "taper_down_s", "kvo_ul_per_h"}
  {"mode": "steps", "steps": [[rate_ul_per_h, volume_ul], ...] (<= 24), "kvo_ul_per_h"}
  {"mode": "prime", "volume_ul", "rate_ul_per_h"}
and on any: "start_delay_s", "occlusion_limit_mmhg", "bubble_limit_ul", "reservoir_ul",
"max_1h_ul" (the rolling-hour cap; PCA also "max_4h_ul").
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from safety_core.constants import RATE_STEP_UL_PER_H

MAX_STEPS = const(24)                 # SR-TH-1: a step profile has at most 24 steps
DEFAULT_OCCLUSION_LIMIT_MMHG = const(300)
DEFAULT_BUBBLE_LIMIT_UL = const(100)
START_DELAY_MAX_S = const(86400)      # a delayed start at most 24 h ahead

# mode codes (event log: THERAPY_MODE a = code)
MODES = ("continuous", "intermittent", "pca", "tpn", "steps", "prime")

# common keys every spec may carry, and their defaults
_COMMON = (("start_delay_s", 0), ("occlusion_limit_mmhg", DEFAULT_OCCLUSION_LIMIT_MMHG),
           ("bubble_limit_ul", DEFAULT_BUBBLE_LIMIT_UL), ("reservoir_ul", None),
           ("kvo_ul_per_h", 0), ("max_1h_ul", 0))


class TherapyError(sc.CoreRefused):
    """A spec the modes cannot take: names the field and the problem."""

    def __init__(self, field, problem):
        sc.CoreRefused.__init__(self, sc.ERR_BELOW_MIN, "%s: %s" % (field, problem))
        self.field = field


def need_int(spec, key, lo=0, hi=None, default=None):
    """An integer field of a spec in lo..hi (TherapyError naming it otherwise)."""
    v = spec.get(key, default)
    if v is None:
        raise TherapyError(key, "missing")
    if not isinstance(v, int) or isinstance(v, bool):
        raise TherapyError(key, "must be an integer, got %r" % (v,))
    if v < lo:
        raise TherapyError(key, "%d below %d" % (v, lo))
    if hi is not None and v > hi:
        raise TherapyError(key, "%d above %d" % (v, hi))
    return v


def on_grid(rate_ul_per_h):
    """Round a rate down to the 0.1 mL/h grid, never below 0.1 mL/h."""
    r = rate_ul_per_h // RATE_STEP_UL_PER_H * RATE_STEP_UL_PER_H
    return r if r >= sc.RATE_MIN_UL_PER_H else sc.RATE_MIN_UL_PER_H


class Therapy:
    """What every mode is.  Subclasses set ``NAME`` and build ``self.segments``
    [(name, rate_ul_per_h, volume_ul)] in ``plan()``; PCA adds boluses."""

    NAME = "therapy"
    bolus_allowed = False
    app = None
    drug_id = 0         # the library drug of a program that names one

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise TherapyError("spec", "must be an object")
        self.spec = {}
        for key in spec:
            self.spec[key] = spec[key]
        for key, default in _COMMON:
            if key not in self.spec:
                self.spec[key] = default
        self.start_delay_s = need_int(self.spec, "start_delay_s", 0, START_DELAY_MAX_S)
        self.segments = []
        self.plan()
        if not self.segments:
            raise TherapyError("spec", "no volume to deliver")
        if len(self.segments) > 64:
            raise TherapyError("spec", "too many segments")
        total = 0
        kvo = need_int(self.spec, "kvo_ul_per_h", 0)
        cap = need_int(self.spec, "max_1h_ul", 0)
        for seg in self.segments:
            # every segment's rate passes the core's rate check (sc_set_rate) up front,
            # so no later segment can be refused while the therapy runs
            name, rate, vol = seg
            if vol <= 0:
                raise TherapyError(name, "segment without volume")
            if rate < sc.RATE_MIN_UL_PER_H or rate > sc.RATE_MAX_UL_PER_H or \
                    rate % RATE_STEP_UL_PER_H:
                raise TherapyError(name, "rate %d uL/h not on the 0.1 mL/h grid of 0.1..500 mL/h"
                                   % rate)
            if rate < kvo:
                raise TherapyError(name, "rate %d uL/h below the KVO rate %d" % (rate, kvo))
            if cap and rate > cap:
                raise TherapyError(name, "rate %d uL/h above the 1 h maximum %d uL" % (rate, cap))
            total += vol
        self.total_ul = total
        self.spec["vtbi_ul"] = total    # what the core enforces (resume_screen shows it)
        self.index = 0                  # the segment being delivered
        self.base_ul = 0                # delivered before this program (power-loss resume)
        self.seg_start_ul = [0] * len(self.segments)   # primary uL when each one started
        self.start_at_ms = None         # delayed start: when the core starts
        self.boluses = {}               # reason name -> count (PCA)
        self.granted = 0
        self.denied = 0
        self.history = []               # phases of an earlier program of this therapy

    # ---- to be provided by each mode ------------------------------------------------
    def plan(self):
        raise NotImplementedError

    # ---- the program the core gets ------------------------------------------------------
    def core_program(self, app=None):
        """kwargs of SafetyCore.load_program for this plan (app: for modes that look
        limits up in the active drug library)."""
        s = self.spec
        return {"rate_ul_per_h": self.segments[self.index][1], "vtbi_ul": self.total_ul,
                "kvo_ul_per_h": need_int(s, "kvo_ul_per_h", 0),
                "occlusion_limit_mmhg": need_int(s, "occlusion_limit_mmhg", 0),
                "bubble_limit_ul": need_int(s, "bubble_limit_ul", 0),
                "max_1h_ul": need_int(s, "max_1h_ul", 0)}

    def segment_end_ul(self, index):
        """Primary volume at which segment ``index`` ends (0 = at the VTBI)."""
        if index >= len(self.segments) - 1:
            return 0
        end = 0
        for i in range(index + 1):
            end += self.segments[i][2]
        return end

    def load(self, app):
        """Load the plan into the core (the first segment's end set)."""
        self.app = app
        self.core_args = self.core_program(app)
        app.core_load(self.core_args)
        if len(self.segments) > 1:
            app.core_set_rate(self.segments[self.index][1], self.segment_end_ul(self.index))
        self.seg_start_ul[self.index] = 0

    # ---- the control cycle ----------------------------------------------------------------
    def delay_pending(self, now_ms):
        """True while a delayed start is waiting (arms it at the first call)."""
        if self.start_delay_s <= 0:
            return False
        if self.start_at_ms is None:
            self.start_at_ms = now_ms + self.start_delay_s * 1000
        return now_ms < self.start_at_ms

    def on_cycle(self, app, now_ms):
        """Once per cycle: start a delayed therapy, move to the next segment."""
        if self.start_at_ms is not None:
            if now_ms >= self.start_at_ms:
                self.start_delay_s = 0
                self.start_at_ms = None
                try:
                    app.start()
                except sc.CoreRefused:
                    pass    # an alarm blocks it: the program waits READY for a nurse's start
            return
        if self.index < len(self.segments) - 1 and app.core.field("segment_held"):
            self.next_segment(app)

    def next_segment(self, app):
        self.index += 1
        self.seg_start_ul[self.index] = app.core.delivered_ul()
        app.core_set_rate(self.segments[self.index][1], self.segment_end_ul(self.index))

    def phase_name(self):
        if self.start_at_ms is not None:
            return "DELAYED START"
        return self.segments[self.index][0]

    # ---- boluses (PCA and clinician) ----------------------------------------------------
    def count_bolus(self, code):
        if code == sc.BOLUS_GRANTED:
            self.granted += 1
        else:
            self.denied += 1
            name = sc.BOLUS_RESULT_NAMES[code].lower() if code < len(sc.BOLUS_RESULT_NAMES) \
                else "code_%d" % code
            self.boluses[name] = self.boluses.get(name, 0) + 1

    # ---- reporting and persistence ---------------------------------------------------------
    def report(self, app=None):
        """Volumes per phase (programmed and delivered, uL) and the boluses: granted (a
        count) and denied (reason -> count: lockout, max_per_hour, max_1h, max_4h, ...)."""
        app = app if app is not None else self.app
        delivered = app.core.delivered_ul()
        phases = []
        for i in range(len(self.segments)):
            name, rate, vol = self.segments[i]
            if i < self.index:
                got = self.seg_start_ul[i + 1] - self.seg_start_ul[i]
            elif i == self.index:
                got = delivered - self.seg_start_ul[i]
            else:
                got = 0
            phases.append({"name": name, "rate_ul_per_h": rate, "programmed_ul": vol,
                           "delivered_ul": got})
        return {"mode": self.NAME, "phases": self.history + phases,
                "programmed_ul": self.base_ul + self.total_ul,
                "delivered_ul": self.base_ul + delivered, "kvo_ul": app.core.kvo_ul(),
                "boluses_granted": self.granted, "boluses_denied": dict(self.boluses),
                "boluses_denied_total": self.denied}

    def snapshot(self):
        """Small ints for the power-loss record (firmware/progress_store.py): the plan's
        position, the bolus counts, and what the rolling windows hold (uL in the last
        1 h / 4 h, patient boluses in the last hour) for sc_restore_history."""
        snap = {"index": self.index, "granted": self.granted, "denied": self.denied}
        app = self.app
        if app is not None:
            core = app.core
            snap["w1h_ul"] = core.window_ul()
            snap["w4h_ul"] = core.window_ul(True)
            snap["b1h"] = core.field("win_1h_boluses") + (
                (core.field("patient_boluses") - core.field("win_base_boluses")) & 0xFFFF)
        return snap

    def resume_from(self, delivered_ul):
        """Drop what was delivered before a power loss from the plan: the remaining
        segments, the first shortened (SR-TH-5)."""
        left = delivered_ul
        segs = []
        for name, rate, vol in self.segments:
            if left >= vol:
                left -= vol
                continue
            segs.append((name, rate, vol - left))
            left = 0
        if not segs:
            raise TherapyError("delivered_ul", "the therapy was already complete")
        self.segments = segs
        self.total_ul = 0
        for seg in segs:
            self.total_ul += seg[2]
        self.seg_start_ul = [0] * len(segs)
        self.base_ul = delivered_ul
        self.start_delay_s = 0


def make(spec):
    """The mode object for a spec (TherapyError on a spec it cannot take)."""
    if not isinstance(spec, dict):
        raise TherapyError("spec", "must be an object")
    mode = spec.get("mode")
    if mode == "continuous":
        from firmware.therapy.continuous import Continuous as cls
    elif mode == "intermittent":
        from firmware.therapy.intermittent import Intermittent as cls
    elif mode == "pca":
        from firmware.therapy.pca import Pca as cls
    elif mode == "tpn":
        from firmware.therapy.tpn import Tpn as cls
    elif mode == "steps":
        from firmware.therapy.steps import Steps as cls
    elif mode == "prime":
        from firmware.therapy.prime import Prime as cls
    else:
        raise TherapyError("mode", "%r is not one of %s" % (mode, ", ".join(MODES)))
    return cls(spec)
