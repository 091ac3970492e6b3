"""Facade of the safety core (channel A): one API over three bindings.

Owns the choice of backend and the Python-side contract:

* ``native``    -- the MicroPython native module ``sc_native`` (device build);
* ``cffi``      -- the C core compiled for the host (``safety_core._sc_cffi``);
* ``reference`` -- the pure-Python executable specification (``reference.py``).

``SafetyCore()`` picks native > cffi > reference unless a backend is named.
All three take the same inputs, clamped here to the C types, and give the
same outputs bit for bit (see tests/test_core_differential.py).  Refusals are
raised as exceptions whose message names the field, the value and the limit
in clinical units (SR-CORE-1).  Never imports anything from firmware/ or hal/.

The constants shared with the C core come from ``safety_core/constants.py``
(re-exported here).  ``reference.py`` is imported only when the reference
backend is chosen, so where the native module is the core the reference's
bytecode never takes heap; ``ReferenceCore`` itself is
``safety_core.reference.ReferenceCore``.
"""
from safety_core.constants import (  # noqa: F401  (re-exported constants)
    TICK_MS, HEARTBEAT_TIMEOUT_MS,
    PHASE_IDLE, PHASE_READY, PHASE_RUNNING, PHASE_KVO, PHASE_COMPLETE, PHASE_PAUSED,
    FAULT_OCCLUSION_DOWN, FAULT_AIR_BUBBLE, FAULT_AIR_CUMULATIVE, FAULT_HEARTBEAT,
    FAULT_STATE, OK, ERR_BELOW_MIN, ERR_ABOVE_MAX, ERR_NOT_MULTIPLE, ERR_BUSY,
    ERR_NO_PROGRAM, ERR_FAULTED, ERR_STATE,
    FIELD_NONE, FIELD_RATE, FIELD_VTBI, FIELD_KVO, FIELD_OCCLUSION_LIMIT,
    FIELD_BUBBLE_LIMIT, FIELD_HARD_MIN_RATE, FIELD_HARD_MAX_RATE, FIELD_USTEP_VOLUME,
    RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H, VTBI_MIN_UL, VTBI_MAX_UL, KVO_MAX_UL_PER_H,
    OCCLUSION_MIN_MMHG, OCCLUSION_MAX_MMHG, BUBBLE_MIN_UL, BUBBLE_MAX_UL,
    U32_MAX, PROGRAM_FIELDS,
    FIELD_MAX_1H, FIELD_MAX_4H, FIELD_BOLUS, FIELD_BOLUS_RATE, FIELD_LOCKOUT,
    FIELD_MAX_BOLUSES, FIELD_SEGMENT_END, FIELD_FLAGS, FLAG_PRIME,
    MAX_1H_MAX_UL, MAX_4H_MAX_UL, BOLUS_MIN_UL, BOLUS_MAX_UL, LOCKOUT_MIN_S, LOCKOUT_MAX_S,
    MAX_BOLUSES_PER_H_MAX, PRIME_MAX_UL,
    BOLUS_PATIENT, BOLUS_CLINICIAN, BOLUS_GRANTED, BOLUS_DENIED_LOCKOUT, BOLUS_DENIED_COUNT,
    BOLUS_DENIED_1H, BOLUS_DENIED_4H, BOLUS_DENIED_NOT_RUNNING, BOLUS_DENIED_NO_PCA,
    BOLUS_DENIED_IN_PROGRESS, BOLUS_DENIED_SIZE,
    FAULT_MOTION_STALL, FAULT_MOTION_RUNAWAY, FIELD_USTEPS_PER_PULSE, USTEPS_PER_PULSE_MAX,
    OCCLUSION_DEBOUNCE_TICKS, TREND_RISE_MMHG, BACKOFF_MAX_UL,
)

PHASE_NAMES = ("IDLE", "READY", "RUNNING", "KVO", "COMPLETE", "PAUSED")
FAULT_NAMES = (
    (FAULT_OCCLUSION_DOWN, "OCCLUSION_DOWNSTREAM"),
    (FAULT_AIR_BUBBLE, "AIR_BUBBLE"),
    (FAULT_AIR_CUMULATIVE, "AIR_CUMULATIVE"),
    (FAULT_HEARTBEAT, "HEARTBEAT"),
    (FAULT_MOTION_STALL, "MOTION_STALL"),
    (FAULT_MOTION_RUNAWAY, "MOTION_RUNAWAY"),
    (FAULT_STATE, "CORE_STATE"),
)
# field id -> (API name, clinical name, unit kind)
FIELDS = {
    FIELD_RATE: ("rate_ul_per_h", "rate", "ul_per_h"),
    FIELD_VTBI: ("vtbi_ul", "VTBI", "ul"),
    FIELD_KVO: ("kvo_ul_per_h", "KVO rate", "ul_per_h"),
    FIELD_OCCLUSION_LIMIT: ("occlusion_limit_mmhg", "occlusion limit", "mmhg"),
    FIELD_BUBBLE_LIMIT: ("bubble_limit_ul", "air bubble limit", "ul_small"),
    FIELD_HARD_MIN_RATE: ("hard_min_rate_ul_per_h", "library hard min rate", "ul_per_h"),
    FIELD_HARD_MAX_RATE: ("hard_max_rate_ul_per_h", "library hard max rate", "ul_per_h"),
    FIELD_USTEP_VOLUME: ("ustep_volume_pl", "microstep volume", "pl"),
    FIELD_MAX_1H: ("max_1h_ul", "1 h maximum", "ul"),
    FIELD_MAX_4H: ("max_4h_ul", "4 h maximum", "ul"),
    FIELD_BOLUS: ("bolus_ul", "bolus", "ul"),
    FIELD_BOLUS_RATE: ("bolus_rate_ul_per_h", "bolus rate", "ul_per_h"),
    FIELD_LOCKOUT: ("lockout_s", "lockout", "s"),
    FIELD_MAX_BOLUSES: ("max_boluses_per_h", "boluses per hour", "count"),
    FIELD_SEGMENT_END: ("until_ul", "segment end", "ul"),
    FIELD_FLAGS: ("flags", "program flags", "count"),
    FIELD_USTEPS_PER_PULSE: ("usteps_per_pulse", "microsteps per encoder pulse", "count"),
}
BOLUS_RESULT_NAMES = ("GRANTED", "LOCKOUT", "MAX_PER_HOUR", "MAX_1H", "MAX_4H",
                      "NOT_RUNNING", "NO_BOLUS", "IN_PROGRESS", "SIZE")
_ERR_TEXT = {
    ERR_BUSY: "program change refused while delivering: pause first",
    ERR_NO_PROGRAM: "no program loaded",
    ERR_FAULTED: "a stop is latched: acknowledge the alarm first",
    ERR_STATE: "safety core state invalid (not initialised or corrupt)",
}

_SMALL = 0x3FFFFFFF        # largest small int on 32-bit MicroPython ports
_I32_MIN = -0x80000000
_I32_MAX = 0x7FFFFFFF


def fault_names(faults):
    """Names of the bits set in a fault word, most serious first."""
    return [name for bit, name in FAULT_NAMES if faults & bit]


def format_quantity(value, kind):
    """Integer value in core units -> text in clinical units (no floats)."""
    if value < 0:
        return "-" + format_quantity(-value, kind)
    if kind == "ul_per_h":
        return "%d.%d mL/h" % (value // 1000, (value % 1000) // 100)
    if kind == "ul":
        return "%d.%d mL" % (value // 1000, (value % 1000) // 100)
    if kind == "ul_small":
        return "%d uL" % value
    if kind == "mmhg":
        return "%d mmHg" % value
    if kind == "pl":
        return "%d pL" % value
    if kind == "s":
        return "%d min %02d s" % (value // 60, value % 60)
    return str(value)


class CoreRefused(Exception):
    """The core refused an operation; ``code`` is an ERR_* value."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class ProgramRefused(CoreRefused):
    """A program or calibration outside the limits (SR-CORE-1).

    ``field`` is the API field name, ``value`` what was asked, ``limit`` the
    limit crossed (core units)."""

    def __init__(self, code, field_id, limit, value):
        api, clinical, kind = FIELDS.get(field_id, ("?", "?", ""))
        if code == ERR_BELOW_MIN:
            text = "%s %s below %s %s" % (clinical, format_quantity(value, kind),
                                          "min", format_quantity(limit, kind))
        elif code == ERR_ABOVE_MAX:
            text = "%s %s above %s %s" % (clinical, format_quantity(value, kind),
                                          "max", format_quantity(limit, kind))
        elif code == ERR_NOT_MULTIPLE:
            text = "%s %s not a multiple of %s" % (clinical, format_quantity(value, kind),
                                                   format_quantity(limit, kind))
        else:
            text = _ERR_TEXT.get(code, "refused (code %d)" % code)
        if field_id == FIELD_SEGMENT_END and code == ERR_BELOW_MIN:
            text = "%s %s not beyond the volume already delivered" % (
                clinical, format_quantity(value, kind))
        CoreRefused.__init__(self, code, text if field_id == FIELD_NONE else
                             "%s [%s]" % (text, api))
        self.field = api
        self.field_id = field_id
        self.limit = limit
        self.value = value


def steps_to_ul(steps, ustep_volume_pl):
    """floor(steps * ustep_volume_pl / 10**6): microsteps -> uL, exactly.

    No intermediate exceeds max(steps, 10**8) for ustep_volume_pl <= 100,000 pL
    (USTEP_VOLUME_MAX_PL), so nothing is allocated on a 32-bit MicroPython port
    (small ints < 2**30) while the step count itself is a small int: always for
    delivered_steps at calibrations >= 9,313 pL (VTBI_MAX_UL = 9,999 mL is at most
    639,936,000 steps at the board's 15,625 pL), and for kvo_steps at 15,625 pL for
    35 days at the maximum KVO rate.  Exact for every steps >= 0.
    steps = a * 10**6 + b * 10**3 + c with b, c < 1000, so
    steps * pl / 10**6 = a * pl + (b * pl + c * pl / 1000) / 1000.
    """
    a = steps // 1000000
    rest = steps - a * 1000000
    b = rest // 1000
    c = rest - b * 1000
    return a * ustep_volume_pl + (b * ustep_volume_pl + c * ustep_volume_pl // 1000) // 1000


def _field_id(name):
    for field_id in FIELDS:
        if FIELDS[field_id][0] == name:
            return field_id
    return FIELD_NONE


def _check_u32(name, v):
    """Outside uint32: refused before the C types could truncate it."""
    if v < 0:
        raise ProgramRefused(ERR_BELOW_MIN, _field_id(name), 0, v)
    if v > U32_MAX:
        raise ProgramRefused(ERR_ABOVE_MAX, _field_id(name), U32_MAX, v)


def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


# The reference core is imported only where it is used (PT-8: where the native module
# is the core its bytecode never takes heap).  Where it is the default core -- no native
# module and no cffi build: the unix port, a board image without lib/sc_native.mpy -- it
# is imported here, with the facade, early in start-up: imported late, at the first
# SafetyCore(), it needs contiguous free blocks that the firmware's start-up has split
# by then (the 24 h run of tests/mpy_scripts/heap_24h.py then needed 157 KiB, not 141).
try:
    import sc_native  # noqa: F401  (the device build: the native module is the core)
except ImportError:
    try:
        from safety_core import cffi_core  # noqa: F401  (the host build of the C core)
    except ImportError:
        from safety_core import reference  # noqa: F401


def _make_backend(name):
    if name == "reference":
        from safety_core.reference import ReferenceCore
        return ReferenceCore()
    if name == "cffi":
        try:        # host only: never in a device image (ImportError = not available)
            from safety_core.cffi_core import CffiCore
        except ImportError:
            raise
        return CffiCore()
    if name == "native":
        from safety_core.native import NativeCore
        return NativeCore()
    raise ValueError("unknown safety core backend %r (native, cffi, reference)" % (name,))


def available_backends():
    """Backends that can be loaded here, best first."""
    found = []
    for name in ("native", "cffi", "reference"):
        try:
            _make_backend(name)
        except ImportError:
            continue
        found.append(name)
    return found


class SafetyCore:
    """The safety core as the firmware sees it.  See docs/CONTRACTS.md."""

    def __init__(self, ustep_volume_pl=15625, backend=None, impl=None):
        if impl is not None:
            backend = backend or "custom"   # a prepared backend object (tests)
        elif backend is None:
            impl = None
            for name in ("native", "cffi", "reference"):
                try:
                    impl = _make_backend(name)
                    backend = name
                    break
                except ImportError:
                    pass
        else:
            impl = _make_backend(backend)
        self.backend = backend
        self._core = impl
        r = impl.init(ustep_volume_pl)
        if r:
            raise ProgramRefused(r[0], r[1], r[2], ustep_volume_pl)
        self.ustep_volume_pl = ustep_volume_pl

    def load_program(self, rate_ul_per_h, vtbi_ul, kvo_ul_per_h=0, occlusion_limit_mmhg=300,
                     bubble_limit_ul=100, hard_min_rate_ul_per_h=0, hard_max_rate_ul_per_h=0,
                     max_1h_ul=0, max_4h_ul=0, bolus_ul=0, bolus_rate_ul_per_h=0, lockout_s=0,
                     max_boluses_per_h=0, flags=0):
        """Validate and load; raises ProgramRefused naming the field and limit.
        The dose-limit fields (0 = not used): rolling-hour cap and 4 h maximum on all
        that is pumped, PCA bolus with its rate, lockout and hourly count (a bolus rate
        alone allows clinician boluses), flags (FLAG_PRIME)."""
        p = {"rate_ul_per_h": rate_ul_per_h, "vtbi_ul": vtbi_ul, "kvo_ul_per_h": kvo_ul_per_h,
             "hard_min_rate_ul_per_h": hard_min_rate_ul_per_h,
             "hard_max_rate_ul_per_h": hard_max_rate_ul_per_h,
             "occlusion_limit_mmhg": occlusion_limit_mmhg, "bubble_limit_ul": bubble_limit_ul,
             "max_1h_ul": max_1h_ul, "max_4h_ul": max_4h_ul, "bolus_ul": bolus_ul,
             "bolus_rate_ul_per_h": bolus_rate_ul_per_h, "lockout_s": lockout_s,
             "max_boluses_per_h": max_boluses_per_h, "flags": flags}
        for name in PROGRAM_FIELDS:
            _check_u32(name, p[name])
        r = self._core.load_program(p)
        if r:
            raise ProgramRefused(r[0], r[1], r[2], p.get(FIELDS.get(r[1], ("?",))[0], 0))

    def set_rate(self, rate_ul_per_h, until_ul=0):
        """Change the running rate (a new segment of a profile, taper or intermittent
        dose); the segment ends at primary volume until_ul (0 = the VTBI) and the motor
        holds there (``segment_held``) until the next set_rate.  Raises ProgramRefused."""
        _check_u32("rate_ul_per_h", rate_ul_per_h)
        _check_u32("until_ul", until_ul)
        r = self._core.set_rate(rate_ul_per_h, until_ul)
        if r:
            raise ProgramRefused(r[0], r[1], r[2],
                                 until_ul if r[1] == FIELD_SEGMENT_END else rate_ul_per_h)

    def bolus(self, kind=BOLUS_PATIENT, amount_ul=0):
        """Ask the core for a bolus: BOLUS_GRANTED or a BOLUS_DENIED_* reason (counted)."""
        if amount_ul < 0 or amount_ul > BOLUS_MAX_UL:
            amount_ul = BOLUS_MAX_UL + 1   # refused as SIZE (a small int on every port)
        return self._core.bolus(kind, amount_ul)

    def restore_history(self, ul_1h, ul_4h, boluses_1h):
        """After a power loss, before the resumed program starts: what the record says was
        pumped in the last 1 h / 4 h and the patient boluses of the last hour enter the
        rolling windows (counted as if given now), and a full lockout starts.  Raises
        CoreRefused outside READY or for values beyond the 4 h / count limits."""
        args = (min(max(ul_1h, 0), U32_MAX), min(max(ul_4h, 0), U32_MAX),
                min(max(boluses_1h, 0), U32_MAX))
        rc = self._core.restore_history(*args)
        if rc != OK:
            raise CoreRefused(rc, _ERR_TEXT.get(rc, "history refused (code %d)" % rc))

    def window_ul(self, hours4=False):
        """Volume pumped in the rolling 1 h (or 4 h) window, uL (rounded down)."""
        return steps_to_ul(self._core.window_steps(1 if hours4 else 0), self.ustep_volume_pl)

    def field(self, name):
        """A scalar field of the core's state by its C name (sc_state_t / sc_program_t):
        e.g. segment_held, bolus_left_steps, patient_boluses, boluses_denied,
        last_denial, capped_ticks, rate_ul_per_h."""
        return self._core.field(name)

    def start(self):
        rc = self._core.start()
        if rc != OK:
            raise CoreRefused(rc, _ERR_TEXT.get(rc, "start refused (code %d)" % rc))

    def pause(self):
        self._core.pause()

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks, encoder_count=0):
        """One sensor sample (pressure, encoder: see ``sample``), then n_ticks control
        ticks; returns the microsteps to make.  The simulator's batch path: one call
        per sample.

        Values inside the 31-bit small-int range (the only ones the firmware
        produces) are compared, never combined with the 32-bit limits, which are
        heap integers on 32-bit MicroPython ports."""
        if downstream_mmhg < -_SMALL or downstream_mmhg > _SMALL:
            downstream_mmhg = _clamp(downstream_mmhg, _I32_MIN, _I32_MAX)
        if air_nl < 0 or air_nl > _SMALL:
            air_nl = _clamp(air_nl, 0, U32_MAX)
        if heartbeat < 0 or heartbeat > _SMALL:
            heartbeat &= U32_MAX
        if encoder_count < 0 or encoder_count > _SMALL:
            encoder_count &= U32_MAX
        return self._core.run(downstream_mmhg, air_nl, 1 if air_present else 0, heartbeat,
                              n_ticks, encoder_count)

    def tick(self, air_nl, air_present, heartbeat):
        """One control tick without a sample (the device's 10 ms hard IRQ); returns the
        microsteps.  Safe in a hard IRQ (no allocation for small-int inputs)."""
        if air_nl < 0 or air_nl > _SMALL:
            air_nl = _clamp(air_nl, 0, U32_MAX)
        if heartbeat < 0 or heartbeat > _SMALL:
            heartbeat &= U32_MAX
        return self._core.tick(air_nl, 1 if air_present else 0, heartbeat)

    def sample(self, downstream_mmhg, encoder_count):
        """One new sensor sample: the downstream occlusion threshold (over the limit for
        500 ms of ticks) and trend (SR-CORE-3), the back-off an occlusion stop decides
        (SR-CORE-4, see ``take_backoff``), and the motion check of the cam encoder
        (SR-CORE-6).  Returns the latched faults."""
        if downstream_mmhg < -_SMALL or downstream_mmhg > _SMALL:
            downstream_mmhg = _clamp(downstream_mmhg, _I32_MIN, _I32_MAX)
        if encoder_count < 0 or encoder_count > _SMALL:
            encoder_count &= U32_MAX
        return self._core.sample(downstream_mmhg, encoder_count)

    def take_backoff(self):
        """The reverse microsteps an occlusion stop decided (SR-CORE-4), once: run the
        motor back by them now (a start cancels the rest).  They stay counted as
        delivered (never given twice)."""
        return self._core.take_backoff()

    def backoff_done(self, usteps):
        """The driver turned the motor back by ``usteps`` (small int) of a back-off: the
        motion check expects their encoder pulses.  Safe in a hard IRQ."""
        self._core.backoff_done(usteps)

    def set_motion_check(self, usteps_per_pulse):
        """Microsteps per cam-encoder pulse (0 = no encoder): the core's motion check
        (SR-CORE-6).  Raises ProgramRefused outside 100..3200 or while delivering."""
        _check_u32("usteps_per_pulse", usteps_per_pulse)
        r = self._core.set_motion_check(usteps_per_pulse)
        if r:
            raise ProgramRefused(r[0], r[1], r[2], usteps_per_pulse)

    def acknowledge(self, downstream_mmhg, air_present, heartbeat, encoder_count=0):
        """Clear the latched faults whose cause is gone; returns those left."""
        downstream_mmhg = _clamp(downstream_mmhg, _I32_MIN, _I32_MAX)
        return self._core.acknowledge(downstream_mmhg, 1 if air_present else 0,
                                      heartbeat & U32_MAX, encoder_count & U32_MAX)

    @property
    def phase(self):
        return self._core.phase

    @property
    def faults(self):
        return self._core.faults

    @property
    def fault_tick(self):
        return self._core.out_fault_tick

    @property
    def delivered_steps(self):
        return self._core.delivered_steps

    @property
    def kvo_steps(self):
        return self._core.kvo_steps

    def delivered_nl(self):
        """Primary volume delivered, nL (rounded down).  A heap int on 32-bit
        MicroPython ports above 2**30 nL and, in between, from ~1 mL (the
        intermediate steps * pL): periodic callers should use delivered_ul()."""
        return self._core.delivered_steps * self.ustep_volume_pl // 1000

    def kvo_nl(self):
        """Volume delivered at KVO after the VTBI, nL (rounded down).  See delivered_nl."""
        return self._core.kvo_steps * self.ustep_volume_pl // 1000

    def delivered_ul(self):
        """Primary volume delivered, uL (rounded down); no heap int (see steps_to_ul)."""
        return steps_to_ul(self._core.delivered_steps, self.ustep_volume_pl)

    def kvo_ul(self):
        """Volume delivered at KVO after the VTBI, uL (rounded down); no heap int."""
        return steps_to_ul(self._core.kvo_steps, self.ustep_volume_pl)

    def snapshot(self):
        return self._core.snapshot()
