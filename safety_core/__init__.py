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
    U32_MAX,
)

PHASE_NAMES = ("IDLE", "READY", "RUNNING", "KVO", "COMPLETE", "PAUSED")
FAULT_NAMES = (
    (FAULT_OCCLUSION_DOWN, "OCCLUSION_DOWNSTREAM"),
    (FAULT_AIR_BUBBLE, "AIR_BUBBLE"),
    (FAULT_AIR_CUMULATIVE, "AIR_CUMULATIVE"),
    (FAULT_HEARTBEAT, "HEARTBEAT"),
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
}
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


def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


class _CffiCore:
    """The host build of the C core through cffi, with ReferenceCore's shape."""

    def __init__(self, module=None):
        if module is None:
            from safety_core import _sc_cffi as module
        ffi, lib = module.ffi, module.lib
        self._ffi = ffi
        self._lib = lib
        self._s = ffi.new("sc_state_t *")
        self._in = ffi.new("sc_inputs_t *")
        self._out = ffi.new("sc_output_t *")
        self._why = ffi.new("sc_refusal_t *")
        self._prog = ffi.new("sc_program_t *")

    def _refusal(self, rc):
        if rc == OK:
            return None
        w = self._why
        return (w.code, w.field, w.limit)

    def init(self, ustep_volume_pl):
        return self._refusal(self._lib.sc_init(self._s, ustep_volume_pl, self._why))

    def load_program(self, rate_ul_per_h, vtbi_ul, kvo_ul_per_h, hard_min_rate_ul_per_h,
                     hard_max_rate_ul_per_h, occlusion_limit_mmhg, bubble_limit_ul):
        p = self._prog
        p.rate_ul_per_h = rate_ul_per_h
        p.vtbi_ul = vtbi_ul
        p.kvo_ul_per_h = kvo_ul_per_h
        p.hard_min_rate_ul_per_h = hard_min_rate_ul_per_h
        p.hard_max_rate_ul_per_h = hard_max_rate_ul_per_h
        p.occlusion_limit_mmhg = occlusion_limit_mmhg
        p.bubble_limit_ul = bubble_limit_ul
        return self._refusal(self._lib.sc_load_program(self._s, p, self._why))

    def start(self):
        return self._lib.sc_start(self._s)

    def pause(self):
        self._lib.sc_pause(self._s)

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks):
        i = self._in
        i.downstream_mmhg = downstream_mmhg
        i.air_nl = air_nl
        i.air_present = air_present
        i.heartbeat = heartbeat
        self._lib.sc_run(self._s, i, n_ticks, self._out)
        return self._out.steps

    def acknowledge(self, downstream_mmhg, air_present, heartbeat):
        i = self._in
        i.downstream_mmhg = downstream_mmhg
        i.air_nl = 0
        i.air_present = air_present
        i.heartbeat = heartbeat
        return self._lib.sc_acknowledge(self._s, i)

    @property
    def phase(self):
        return self._s.phase

    @property
    def faults(self):
        return self._s.faults

    @property
    def delivered_steps(self):
        return self._s.delivered_steps

    @property
    def kvo_steps(self):
        return self._s.kvo_steps

    @property
    def out_fault_tick(self):
        return self._out.fault_tick

    @property
    def ustep_volume_pl(self):
        return self._s.ustep_volume_pl

    @property
    def vtbi_steps(self):
        return self._s.vtbi_steps

    def snapshot(self):
        s = self._s
        p = s.program
        return (s.magic, s.ustep_volume_pl, s.step_cost, s.phase, s.faults,
                p.rate_ul_per_h, p.vtbi_ul, p.kvo_ul_per_h, p.hard_min_rate_ul_per_h,
                p.hard_max_rate_ul_per_h, p.occlusion_limit_mmhg, p.bubble_limit_ul,
                s.rate_whole_steps, s.rate_rem, s.kvo_whole_steps, s.kvo_rem, s.acc,
                s.vtbi_steps, s.delivered_steps, s.kvo_steps, s.bubble_limit_nl, s.ticks,
                s.last_heartbeat, s.heartbeat_age_ticks, s.occlusion_ticks, s.air_run_nl,
                s.air_window_nl, s.air_bucket_index, s.air_bucket_age_ticks,
                tuple(s.air_bucket_nl))


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
        from safety_core import _sc_cffi  # noqa: F401  (the host build of the C core)
    except ImportError:
        from safety_core import reference  # noqa: F401


def _make_backend(name):
    if name == "reference":
        from safety_core.reference import ReferenceCore
        return ReferenceCore()
    if name == "cffi":
        return _CffiCore()
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
                     bubble_limit_ul=100, hard_min_rate_ul_per_h=0, hard_max_rate_ul_per_h=0):
        """Validate and load; raises ProgramRefused naming the field and limit."""
        fields = ((FIELD_RATE, rate_ul_per_h), (FIELD_VTBI, vtbi_ul), (FIELD_KVO, kvo_ul_per_h),
                  (FIELD_HARD_MIN_RATE, hard_min_rate_ul_per_h),
                  (FIELD_HARD_MAX_RATE, hard_max_rate_ul_per_h),
                  (FIELD_OCCLUSION_LIMIT, occlusion_limit_mmhg),
                  (FIELD_BUBBLE_LIMIT, bubble_limit_ul))
        for field_id, v in fields:
            # outside uint32: refuse before the C types could truncate it
            if v < 0:
                raise ProgramRefused(ERR_BELOW_MIN, field_id, 0, v)
            if v > U32_MAX:
                raise ProgramRefused(ERR_ABOVE_MAX, field_id, U32_MAX, v)
        r = self._core.load_program(rate_ul_per_h, vtbi_ul, kvo_ul_per_h,
                                    hard_min_rate_ul_per_h, hard_max_rate_ul_per_h,
                                    occlusion_limit_mmhg, bubble_limit_ul)
        if r:
            value = {FIELD_RATE: rate_ul_per_h, FIELD_VTBI: vtbi_ul, FIELD_KVO: kvo_ul_per_h,
                     FIELD_OCCLUSION_LIMIT: occlusion_limit_mmhg,
                     FIELD_BUBBLE_LIMIT: bubble_limit_ul,
                     FIELD_HARD_MIN_RATE: hard_min_rate_ul_per_h,
                     FIELD_HARD_MAX_RATE: hard_max_rate_ul_per_h}.get(r[1], 0)
            raise ProgramRefused(r[0], r[1], r[2], value)

    def start(self):
        rc = self._core.start()
        if rc != OK:
            raise CoreRefused(rc, _ERR_TEXT.get(rc, "start refused (code %d)" % rc))

    def pause(self):
        self._core.pause()

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks):
        """Advance n_ticks control ticks; returns the microsteps to make.

        Safe in a hard IRQ: values inside the 31-bit small-int range (the only
        ones the firmware produces) are compared, never combined with the 32-bit
        limits, which are heap integers on 32-bit MicroPython ports."""
        if downstream_mmhg < -_SMALL or downstream_mmhg > _SMALL:
            downstream_mmhg = _clamp(downstream_mmhg, _I32_MIN, _I32_MAX)
        if air_nl < 0 or air_nl > _SMALL:
            air_nl = _clamp(air_nl, 0, U32_MAX)
        if heartbeat < 0 or heartbeat > _SMALL:
            heartbeat &= U32_MAX
        return self._core.run(downstream_mmhg, air_nl, 1 if air_present else 0, heartbeat,
                              n_ticks)

    def acknowledge(self, downstream_mmhg, air_present, heartbeat):
        """Clear the latched faults whose cause is gone; returns those left."""
        downstream_mmhg = _clamp(downstream_mmhg, _I32_MIN, _I32_MAX)
        return self._core.acknowledge(downstream_mmhg, 1 if air_present else 0,
                                      heartbeat & U32_MAX)

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
