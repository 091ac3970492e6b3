"""Pure-Python reference of the safety core: the executable specification.

Owns the same behaviour as ``safety_core/src/safety_core.c``, bit for bit:
program validation (SR-CORE-1), exact rate -> microstep accounting, rate
segments, VTBI stop and KVO, the rolling 1 h cap and 4 h maximum, PCA and
clinician boluses with lockout and hourly count (SR-CORE-2, SR-TH-1),
per sensor sample (``sample``) the downstream occlusion threshold and trend
(SR-CORE-3), the back-off (SR-CORE-4) and the motion check (SR-CORE-6), single-bubble and rolling 15-minute air
(SR-CORE-5), heartbeat (SR-CORE-7) and fault latching (SR-CORE-8).  Every C ``uint32_t`` is a Python int kept in
0..2**32-1 with the same saturation rules, so the differential tests can
compare every field tick by tick.

MicroPython-portable and the fallback where the native module is absent.
It must never do I/O or read a clock.
"""
from safety_core.constants import (
    HEARTBEAT_TIMEOUT_TICKS, OCCLUSION_DEBOUNCE_TICKS, AIR_BUCKET_TICKS, AIR_BUCKETS,
    AIR_CUMULATIVE_LIMIT_NL, TICK_MS,
    RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H, RATE_STEP_UL_PER_H, VTBI_MIN_UL, VTBI_MAX_UL,
    KVO_MIN_UL_PER_H, KVO_MAX_UL_PER_H, OCCLUSION_MIN_MMHG, OCCLUSION_MAX_MMHG,
    BUBBLE_MIN_UL, BUBBLE_MAX_UL, USTEP_VOLUME_MIN_PL, USTEP_VOLUME_MAX_PL,
    PHASE_IDLE, PHASE_READY, PHASE_RUNNING, PHASE_KVO, PHASE_COMPLETE, PHASE_PAUSED,
    FAULT_OCCLUSION_DOWN, FAULT_AIR_BUBBLE, FAULT_AIR_CUMULATIVE, FAULT_HEARTBEAT,
    FAULT_STATE, ERR_BELOW_MIN, ERR_ABOVE_MAX, ERR_NOT_MULTIPLE, ERR_BUSY,
    ERR_NO_PROGRAM, ERR_FAULTED, ERR_STATE, OK,
    FIELD_NONE, FIELD_RATE, FIELD_VTBI, FIELD_KVO, FIELD_OCCLUSION_LIMIT,
    FIELD_BUBBLE_LIMIT, FIELD_HARD_MIN_RATE, FIELD_HARD_MAX_RATE, FIELD_USTEP_VOLUME,
    UNITS_PER_UL_PER_H_MS, UNITS_PER_PL, MAGIC, U32_MAX,
    MAX_1H_MAX_UL, MAX_4H_MAX_UL, BOLUS_MIN_UL, BOLUS_MAX_UL, LOCKOUT_MIN_S, LOCKOUT_MAX_S,
    MAX_BOLUSES_PER_H_MAX, PRIME_MAX_UL, TICKS_PER_S, WINDOW_BUCKET_TICKS, WINDOW_BUCKETS,
    WINDOW_1H_BUCKETS, WINDOW_FIRST_ROLL_TICKS, FLAG_PRIME, BOLUS_PATIENT, BOLUS_CLINICIAN,
    BOLUS_GRANTED, BOLUS_DENIED_LOCKOUT, BOLUS_DENIED_COUNT, BOLUS_DENIED_1H,
    BOLUS_DENIED_4H, BOLUS_DENIED_NOT_RUNNING, BOLUS_DENIED_NO_PCA,
    BOLUS_DENIED_IN_PROGRESS, BOLUS_DENIED_SIZE,
    FIELD_MAX_1H, FIELD_MAX_4H, FIELD_BOLUS, FIELD_BOLUS_RATE, FIELD_LOCKOUT,
    FIELD_MAX_BOLUSES, FIELD_SEGMENT_END, FIELD_FLAGS, PROGRAM_FIELDS, STATE_SCALARS,
    TREND_SEGMENT_STEPS, TREND_SEGMENTS, TREND_RISE_MMHG, TREND_STEP_MMHG, TREND_SHARE_PCT, TREND_QUIET_MMHG, TREND_MAX_SAMPLES,
    PRESSURE_FLOOR_MMHG, PRESSURE_CEIL_MMHG, BACKOFF_MAX_UL, BACKOFF_TARGET_MMHG,
    USTEPS_PER_PULSE_MIN,
    USTEPS_PER_PULSE_MAX, MOTION_SLACK_PULSES, MOTION_QUIET_TICKS, FAULT_MOTION_STALL, FAULT_MOTION_RUNAWAY,
    FIELD_USTEPS_PER_PULSE, WATCH_FIELDS, TREND_MAX_UL_PER_H,
)

def _sat_add(a, b):
    r = a + b
    return U32_MAX if r > U32_MAX else r


def _vtbi_to_steps(vtbi_ul, pl):
    # identical decomposition to the C (no 64-bit there): floor(vtbi*1e6/pl)
    q1, r1 = divmod(vtbi_ul, pl)
    q2, r2 = divmod(r1 * 1000, pl)
    q3 = (r2 * 1000) // pl
    if q1 > 4294:
        return U32_MAX
    return _sat_add(_sat_add(q1 * 1000000, q2 * 1000), q3)


def _check_range(field, value, lo, hi):
    if value < lo:
        return (ERR_BELOW_MIN, field, lo)
    if value > hi:
        return (ERR_ABOVE_MAX, field, hi)
    return None


def _check_optional(field, value, lo, hi):
    if value == 0:
        return None
    return _check_range(field, value, lo, hi)


def _check_multiple(field, value):
    if value % RATE_STEP_UL_PER_H:
        return (ERR_NOT_MULTIPLE, field, RATE_STEP_UL_PER_H)
    return None


def check_rate(p, rate_ul_per_h):
    """check_rate of the C: p is a dict of the program's fields."""
    rate_min = p["hard_min_rate_ul_per_h"] or RATE_MIN_UL_PER_H
    rate_max = p["hard_max_rate_ul_per_h"] or RATE_MAX_UL_PER_H
    r = _check_range(FIELD_RATE, rate_ul_per_h, rate_min, rate_max)
    if r:
        return r
    r = _check_multiple(FIELD_RATE, rate_ul_per_h)
    if r:
        return r
    if p["max_1h_ul"] and rate_ul_per_h > p["max_1h_ul"]:
        return (ERR_ABOVE_MAX, FIELD_RATE, p["max_1h_ul"])
    if p["max_4h_ul"] and rate_ul_per_h > p["max_4h_ul"] >> 2:
        return (ERR_ABOVE_MAX, FIELD_RATE, p["max_4h_ul"] >> 2)
    return None


def _check_bolus(p):
    prime = p["flags"] & FLAG_PRIME
    bolus_rate = p["bolus_rate_ul_per_h"]
    if prime and bolus_rate:
        return (ERR_ABOVE_MAX, FIELD_BOLUS_RATE, 0)
    r = _check_optional(FIELD_BOLUS_RATE, bolus_rate, RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H) \
        or _check_multiple(FIELD_BOLUS_RATE, bolus_rate)
    if r:
        return r
    # a bolus runs on top of the basal: together never above the device maximum
    if bolus_rate > RATE_MAX_UL_PER_H - p["rate_ul_per_h"]:
        return (ERR_ABOVE_MAX, FIELD_BOLUS_RATE, RATE_MAX_UL_PER_H - p["rate_ul_per_h"])
    bolus = p["bolus_ul"]
    if bolus == 0:
        return _check_range(FIELD_LOCKOUT, p["lockout_s"], 0, 0) or \
            _check_range(FIELD_MAX_BOLUSES, p["max_boluses_per_h"], 0, 0)
    r = _check_range(FIELD_BOLUS, bolus, BOLUS_MIN_UL, BOLUS_MAX_UL)
    if r:
        return r
    if p["max_1h_ul"] and bolus > p["max_1h_ul"]:
        return (ERR_ABOVE_MAX, FIELD_BOLUS, p["max_1h_ul"])
    if p["max_4h_ul"] and bolus > p["max_4h_ul"]:
        return (ERR_ABOVE_MAX, FIELD_BOLUS, p["max_4h_ul"])
    return _check_range(FIELD_BOLUS_RATE, bolus_rate, RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H) \
        or _check_range(FIELD_LOCKOUT, p["lockout_s"], LOCKOUT_MIN_S, LOCKOUT_MAX_S) \
        or _check_range(FIELD_MAX_BOLUSES, p["max_boluses_per_h"], 0, MAX_BOLUSES_PER_H_MAX)


def validate_program(p):
    """Return None if the program (a dict of PROGRAM_FIELDS) is valid, else
    (code, field, limit) exactly as the C does, in the C's order."""
    prime = p["flags"] & FLAG_PRIME
    r = _check_range(FIELD_FLAGS, p["flags"], 0, FLAG_PRIME)
    if r:
        return r
    hard_min = p["hard_min_rate_ul_per_h"]
    r = _check_optional(FIELD_HARD_MIN_RATE, hard_min, RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H) \
        or _check_optional(FIELD_HARD_MAX_RATE, p["hard_max_rate_ul_per_h"],
                           hard_min or RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H) \
        or _check_optional(FIELD_MAX_1H, p["max_1h_ul"], VTBI_MIN_UL, MAX_1H_MAX_UL) \
        or _check_optional(FIELD_MAX_4H, p["max_4h_ul"], VTBI_MIN_UL, MAX_4H_MAX_UL) \
        or check_rate(p, p["rate_ul_per_h"]) \
        or _check_range(FIELD_VTBI, p["vtbi_ul"], VTBI_MIN_UL,
                        PRIME_MAX_UL if prime else VTBI_MAX_UL)
    if r:
        return r
    kvo = p["kvo_ul_per_h"]
    if kvo != 0:
        rate = p["rate_ul_per_h"]
        kvo_max = rate if rate < KVO_MAX_UL_PER_H else KVO_MAX_UL_PER_H
        if prime:
            kvo_max = 0   # a prime ends stopped
        r = _check_range(FIELD_KVO, kvo, KVO_MIN_UL_PER_H, kvo_max) or \
            _check_multiple(FIELD_KVO, kvo)
        if r:
            return r
    r = _check_range(FIELD_OCCLUSION_LIMIT, p["occlusion_limit_mmhg"],
                     OCCLUSION_MIN_MMHG, OCCLUSION_MAX_MMHG) or \
        _check_range(FIELD_BUBBLE_LIMIT, p["bubble_limit_ul"], BUBBLE_MIN_UL, BUBBLE_MAX_UL)
    if r:
        return r
    if prime and p["bolus_ul"]:
        return (ERR_ABOVE_MAX, FIELD_BOLUS, 0)
    return _check_bolus(p)


def _cap_steps_of(cap_ul, pl):
    return U32_MAX if cap_ul == 0 else _vtbi_to_steps(cap_ul, pl)


def _cap_left(cap, used):
    return cap - used if cap > used else 0


class ReferenceCore:
    """State and operations of one safety core, mirroring sc_state_t."""

    def __init__(self):
        self.magic = 0
        self.air_bucket_nl = [0] * AIR_BUCKETS
        self.win_steps = [0] * WINDOW_BUCKETS
        self.win_boluses = [0] * WINDOW_BUCKETS
        self._zero()

    def _zero(self):
        self.ustep_volume_pl = 0
        self.step_cost = 0
        self.phase = PHASE_IDLE
        self.faults = 0
        # program (same order as sc_program_t)
        for name in PROGRAM_FIELDS:
            setattr(self, name, 0)
        self.rate_whole_steps = 0
        self.rate_rem = 0
        self.kvo_whole_steps = 0
        self.kvo_rem = 0
        self.acc = 0
        self.vtbi_steps = 0
        self.delivered_steps = 0
        self.kvo_steps = 0
        self.bubble_limit_nl = 0
        self.ticks = 0
        self.last_heartbeat = 0
        self.heartbeat_age_ticks = 0
        self.motor_steps = 0
        for name in WATCH_FIELDS:
            setattr(self, name, 0)
        self.air_run_nl = 0
        self.air_window_nl = 0
        self.air_bucket_index = 0
        self.air_bucket_age_ticks = 0
        for i in range(AIR_BUCKETS):
            self.air_bucket_nl[i] = 0
        # segments, boluses, rolling windows (the order of sc_state_t)
        self.limit_steps = 0
        self.segment_held = 0
        self.bolus_steps = 0
        self.bolus_left_steps = 0
        self.bolus_whole_steps = 0
        self.bolus_rem = 0
        self.bolus_acc = 0
        self.lockout_ticks = 0
        self.last_bolus_tick = 0
        self.patient_boluses = 0
        self.clinician_boluses = 0
        self.boluses_denied = 0
        self.last_denial = 0
        self.pumped_steps = 0
        self.max_1h_steps = 0
        self.max_4h_steps = 0
        self.allow_steps = 0
        self.capped_ticks = 0
        self.win_age_ticks = 0
        self.win_index = 0
        self.win_base_steps = 0
        self.win_base_boluses = 0
        self.win_1h_steps = 0
        self.win_4h_steps = 0
        self.win_1h_boluses = 0
        self.window_mask = 0
        self.air_armed = 0
        for i in range(WINDOW_BUCKETS):
            self.win_steps[i] = 0
            self.win_boluses[i] = 0
        # outputs of the last run
        self.out_steps = 0
        self.out_fault_tick = 0

    def field(self, name):
        """A scalar field of sc_state_t (program fields included) by its C name."""
        return getattr(self, name)

    def _program(self):
        p = {}
        for name in PROGRAM_FIELDS:
            p[name] = getattr(self, name)
        return p

    # ---- API mirroring safety_core.h -----------------------------------
    def init(self, ustep_volume_pl):
        """sc_init: returns None or the refusal (code, field, limit)."""
        r = _check_range(FIELD_USTEP_VOLUME, ustep_volume_pl,
                         USTEP_VOLUME_MIN_PL, USTEP_VOLUME_MAX_PL)
        if r:
            self.magic = 0
            return r
        self._zero()
        self.magic = MAGIC
        self.ustep_volume_pl = ustep_volume_pl
        self.step_cost = ustep_volume_pl * UNITS_PER_PL
        self.max_1h_steps = U32_MAX
        self.max_4h_steps = U32_MAX
        self.allow_steps = U32_MAX
        self.window_mask = U32_MAX
        self.win_age_ticks = WINDOW_BUCKET_TICKS - WINDOW_FIRST_ROLL_TICKS
        self.backoff_max_steps = _vtbi_to_steps(BACKOFF_MAX_UL, ustep_volume_pl)
        return None

    def _increments(self, rate_ul_per_h):
        return divmod(rate_ul_per_h * TICK_MS * UNITS_PER_UL_PER_H_MS, self.step_cost)

    def load_program(self, p):
        """sc_load_program (p: a dict of PROGRAM_FIELDS): None or (code, field, limit)."""
        if self.magic != MAGIC:
            return (ERR_STATE, FIELD_NONE, 0)
        if self.phase == PHASE_RUNNING or self.phase == PHASE_KVO:
            return (ERR_BUSY, FIELD_NONE, 0)
        r = validate_program(p)
        if r:
            return r
        if self.flags & FLAG_PRIME:
            self.air_run_nl = 0   # the prime's air never entered the window (see _tick)
        for name in PROGRAM_FIELDS:
            setattr(self, name, p[name])
        pl = self.ustep_volume_pl
        self.rate_whole_steps, self.rate_rem = self._increments(p["rate_ul_per_h"])
        self.kvo_whole_steps, self.kvo_rem = self._increments(p["kvo_ul_per_h"])
        self.bolus_whole_steps, self.bolus_rem = self._increments(p["bolus_rate_ul_per_h"])
        self.vtbi_steps = _vtbi_to_steps(p["vtbi_ul"], pl)
        self.limit_steps = self.vtbi_steps
        self.segment_held = 0
        self.bolus_steps = _vtbi_to_steps(p["bolus_ul"], pl) if p["bolus_ul"] else 0
        self.bolus_left_steps = 0
        self.bolus_acc = 0
        self.lockout_ticks = p["lockout_s"] * TICKS_PER_S
        self.bubble_limit_nl = p["bubble_limit_ul"] * 1000
        self.acc = 0
        self.delivered_steps = 0
        self.kvo_steps = 0
        self.occlusion_over = 0
        self.motion_armed = 0   # a new base for the motion check
        self._trend_reset()
        # the windows keep what was pumped before: a new program never resets a cap
        self.max_1h_steps = _cap_steps_of(p["max_1h_ul"], pl)
        self.max_4h_steps = _cap_steps_of(p["max_4h_ul"], pl)
        self._window_allow()
        prime = p["flags"] & FLAG_PRIME
        self.window_mask = 0 if prime else U32_MAX
        self.air_armed = 0 if prime else 1
        self.phase = PHASE_READY
        return None

    def start(self):
        """sc_start: returns OK or ERR_*."""
        if self.magic != MAGIC:
            return ERR_STATE
        if self.phase == PHASE_IDLE:
            return ERR_NO_PROGRAM
        if self.faults:
            return ERR_FAULTED
        self.heartbeat_age_ticks = 0
        self.occlusion_over = 0
        self.backoff_steps = 0  # a back-off not taken by now never runs
        self.motion_armed = 0   # the first sample after the start sets the encoder base
        self._trend_reset()
        if self.delivered_steps < self.vtbi_steps:
            self.phase = PHASE_RUNNING
        elif self.kvo_ul_per_h:
            self.phase = PHASE_KVO
        else:
            self.phase = PHASE_COMPLETE
        return OK

    def pause(self):
        """sc_pause."""
        if self.magic == MAGIC and (self.phase == PHASE_RUNNING or self.phase == PHASE_KVO
                                     or self.phase == PHASE_READY):
            self.phase = PHASE_PAUSED
            self.bolus_left_steps = 0   # a stop cancels the rest of a bolus

    def set_rate(self, rate_ul_per_h, until_ul):
        """sc_set_rate: None or the refusal (code, field, limit)."""
        if self.magic != MAGIC:
            return (ERR_STATE, FIELD_NONE, 0)
        if self.phase == PHASE_IDLE:
            return (ERR_NO_PROGRAM, FIELD_NONE, 0)
        if self.phase == PHASE_KVO or self.phase == PHASE_COMPLETE:
            return (ERR_BUSY, FIELD_NONE, 0)
        r = check_rate(self._program(), rate_ul_per_h)
        if r:
            return r
        if self.kvo_ul_per_h > rate_ul_per_h:
            return (ERR_BELOW_MIN, FIELD_RATE, self.kvo_ul_per_h)
        if rate_ul_per_h > RATE_MAX_UL_PER_H - self.bolus_rate_ul_per_h:
            return (ERR_ABOVE_MAX, FIELD_RATE, RATE_MAX_UL_PER_H - self.bolus_rate_ul_per_h)
        if until_ul > self.vtbi_ul:
            return (ERR_ABOVE_MAX, FIELD_SEGMENT_END, self.vtbi_ul)
        limit = self.vtbi_steps if until_ul == 0 else _vtbi_to_steps(until_ul,
                                                                     self.ustep_volume_pl)
        if limit <= self.delivered_steps:
            return (ERR_BELOW_MIN, FIELD_SEGMENT_END, until_ul)
        self.rate_ul_per_h = rate_ul_per_h
        self.rate_whole_steps, self.rate_rem = self._increments(rate_ul_per_h)
        self.limit_steps = limit
        self._trend_reset()     # a new rate moves the line's pressure
        self.segment_held = 0
        return None

    def restore_history(self, ul_1h, ul_4h, boluses_1h):
        """sc_restore_history: OK or ERR_*."""
        if self.magic != MAGIC:
            return ERR_STATE
        if self.phase != PHASE_READY:
            return ERR_BUSY
        if ul_1h > MAX_4H_MAX_UL or ul_4h > MAX_4H_MAX_UL or boluses_1h > MAX_BOLUSES_PER_H_MAX:
            return ERR_ABOVE_MAX
        pl = self.ustep_volume_pl
        steps_1h = _vtbi_to_steps(ul_1h, pl)
        steps_4h = _vtbi_to_steps(ul_4h, pl)
        self.win_base_steps = (self.win_base_steps - steps_1h) & U32_MAX
        self.win_base_boluses = (self.win_base_boluses - boluses_1h) & U32_MAX
        if steps_4h > steps_1h:
            i = self.win_index
            j = i - 13 if i >= 13 else i + WINDOW_BUCKETS - 13
            self.win_steps[j] = (self.win_steps[j] + steps_4h - steps_1h) & U32_MAX
            self.win_4h_steps = (self.win_4h_steps + steps_4h - steps_1h) & U32_MAX
        self.last_bolus_tick = self.ticks
        self.patient_boluses = (self.patient_boluses + 1) & U32_MAX
        self.win_base_boluses = (self.win_base_boluses + 1) & U32_MAX
        self._window_allow()
        return OK

    def _deny(self, code):
        if self.boluses_denied < U32_MAX:
            self.boluses_denied += 1
        self.last_denial = code
        return code

    def bolus(self, kind, amount_ul):
        """sc_bolus: BOLUS_GRANTED or the BOLUS_DENIED_* reason (counted)."""
        if self.magic != MAGIC:
            return BOLUS_DENIED_NOT_RUNNING
        if self.phase != PHASE_RUNNING or self.segment_held:
            return self._deny(BOLUS_DENIED_NOT_RUNNING)
        if self.bolus_left_steps:
            return self._deny(BOLUS_DENIED_IN_PROGRESS)
        if kind == BOLUS_PATIENT:
            if self.bolus_ul == 0:
                return self._deny(BOLUS_DENIED_NO_PCA)
            if self.patient_boluses and \
                    ((self.ticks - self.last_bolus_tick) & U32_MAX) < self.lockout_ticks:
                return self._deny(BOLUS_DENIED_LOCKOUT)
            if self.max_boluses_per_h and \
                    self.win_1h_boluses + ((self.patient_boluses - self.win_base_boluses)
                                           & U32_MAX) >= self.max_boluses_per_h:
                return self._deny(BOLUS_DENIED_COUNT)
            steps = self.bolus_steps
        else:
            if self.bolus_rate_ul_per_h == 0 or kind != BOLUS_CLINICIAN:
                return self._deny(BOLUS_DENIED_NO_PCA)
            if amount_ul < BOLUS_MIN_UL or amount_ul > BOLUS_MAX_UL:
                return self._deny(BOLUS_DENIED_SIZE)
            steps = _vtbi_to_steps(amount_ul, self.ustep_volume_pl)
        if steps > _cap_left(self.max_1h_steps, self.window_steps(0)):
            return self._deny(BOLUS_DENIED_1H)
        if steps > _cap_left(self.max_4h_steps, self.window_steps(1)):
            return self._deny(BOLUS_DENIED_4H)
        self.bolus_left_steps = steps
        self.bolus_acc = 0
        self._trend_reset()     # the bolus rate raises the line's pressure
        if kind == BOLUS_PATIENT:
            self.last_bolus_tick = self.ticks
            self.patient_boluses = (self.patient_boluses + 1) & U32_MAX
        elif self.clinician_boluses < U32_MAX:
            self.clinician_boluses += 1
        return BOLUS_GRANTED

    def window_steps(self, hours4):
        """sc_window_steps: steps pumped in the rolling 1 h (0) or 4 h (1) window."""
        current = (self.pumped_steps - self.win_base_steps) & U32_MAX
        return ((self.win_4h_steps if hours4 else self.win_1h_steps) + current) & U32_MAX

    def _window_allow(self):
        a1 = _cap_left(self.max_1h_steps, self.window_steps(0))
        a4 = _cap_left(self.max_4h_steps, self.window_steps(1))
        self.allow_steps = a1 if a1 < a4 else a4

    def _window_roll(self):
        """window_roll of the C: the bucket closes in three stages on three ticks."""
        i = self.win_index
        stage = self.win_age_ticks - WINDOW_BUCKET_TICKS
        ws = self.win_steps
        wb = self.win_boluses
        if stage == 0:
            steps = (self.pumped_steps - self.win_base_steps) & U32_MAX
            boluses = (self.patient_boluses - self.win_base_boluses) & U32_MAX
            ws[i] = steps
            wb[i] = boluses
            self.win_1h_steps = (self.win_1h_steps + steps) & U32_MAX
            self.win_4h_steps = (self.win_4h_steps + steps) & U32_MAX
            self.win_1h_boluses = (self.win_1h_boluses + boluses) & U32_MAX
            self.win_base_steps = self.pumped_steps
            self.win_base_boluses = self.patient_boluses
        elif stage == 1:
            gone = i - WINDOW_1H_BUCKETS if i >= WINDOW_1H_BUCKETS else \
                i + WINDOW_BUCKETS - WINDOW_1H_BUCKETS
            oldest = i + 1 if i + 1 < WINDOW_BUCKETS else 0
            self.win_1h_steps = (self.win_1h_steps - ws[gone]) & U32_MAX
            self.win_1h_boluses = (self.win_1h_boluses - wb[gone]) & U32_MAX
            self.win_4h_steps = (self.win_4h_steps - ws[oldest]) & U32_MAX
            ws[oldest] = 0
            wb[oldest] = 0
            self.win_index = oldest
        else:
            self._window_allow()
            self.win_age_ticks = 2

    # The constants live in safety_core/constants.py: imported, they are global lookups
    # for MicroPython, no longer const() inlined here.  The ones read on every tick are
    # bound as default arguments of the same name (locals, set once at definition): a
    # global lookup each would slow the tick by ~15-20 % under MicroPython (unix port).
    # run() never passes them.
    def _tick(self, air_nl, air_present, heartbeat,
              PHASE_RUNNING=PHASE_RUNNING, PHASE_KVO=PHASE_KVO,
              U32_MAX=U32_MAX, AIR_BUCKET_TICKS=AIR_BUCKET_TICKS,
              AIR_CUMULATIVE_LIMIT_NL=AIR_CUMULATIVE_LIMIT_NL,
              HEARTBEAT_TIMEOUT_TICKS=HEARTBEAT_TIMEOUT_TICKS,
              WINDOW_BUCKET_TICKS=WINDOW_BUCKET_TICKS):
        phase = self.phase
        motor_active = phase == PHASE_RUNNING or phase == PHASE_KVO
        if self.ticks < U32_MAX:
            self.ticks += 1
        self.win_age_ticks += 1
        if self.win_age_ticks >= WINDOW_BUCKET_TICKS:
            self._window_roll()
        found = 0
        # heartbeat (SR-CORE-7)
        if heartbeat != self.last_heartbeat:
            self.last_heartbeat = heartbeat
            self.heartbeat_age_ticks = 0
        elif self.heartbeat_age_ticks < U32_MAX:
            self.heartbeat_age_ticks += 1
        # air (SR-CORE-5)
        if air_nl:
            self.air_run_nl = _sat_add(self.air_run_nl, air_nl)
        elif not air_present:
            self.air_run_nl = 0
        self.air_bucket_age_ticks += 1
        if self.air_bucket_age_ticks >= AIR_BUCKET_TICKS:
            self.air_bucket_age_ticks = 0
            idx = self.air_bucket_index + 1
            if idx >= AIR_BUCKETS:
                idx = 0
            self.air_bucket_index = idx
            self.air_window_nl -= self.air_bucket_nl[idx]
            self.air_bucket_nl[idx] = 0
        if air_nl:
            counted = air_nl & self.window_mask     # a prime's air reaches no patient
            idx = self.air_bucket_index
            self.air_bucket_nl[idx] = _sat_add(self.air_bucket_nl[idx], counted)
            self.air_window_nl = _sat_add(self.air_window_nl, counted)
        if self.air_armed:      # a program is loaded and it is not a prime
            if self.air_run_nl >= self.bubble_limit_nl:
                found |= FAULT_AIR_BUBBLE
            if self.air_window_nl > AIR_CUMULATIVE_LIMIT_NL:
                found |= FAULT_AIR_CUMULATIVE
        if motor_active and self.heartbeat_age_ticks > HEARTBEAT_TIMEOUT_TICKS:
            found |= FAULT_HEARTBEAT
        if found:
            self.faults |= found
            if motor_active:
                self.phase = PHASE_PAUSED
                self.bolus_left_steps = 0   # a stop cancels the rest of a bolus
        if self.faults:
            return 0
        # schedule (exact Bresenham; segments, VTBI clamp and caps: SR-CORE-2)
        if phase == PHASE_RUNNING:
            left = self.limit_steps - self.delivered_steps
            steps = self.rate_whole_steps
            acc = self.acc + self.rate_rem
            if acc >= self.step_cost:
                acc -= self.step_cost
                steps += 1
            self.acc = acc
            if self.bolus_left_steps:
                b = self.bolus_whole_steps
                bacc = self.bolus_acc + self.bolus_rem
                if bacc >= self.step_cost:
                    bacc -= self.step_cost
                    b += 1
                self.bolus_acc = bacc
                if b > self.bolus_left_steps:
                    b = self.bolus_left_steps
                self.bolus_left_steps -= b
                steps += b
            if steps >= left:
                steps = left
                self._end_segment()
            steps = self._window_count(steps)
            self.delivered_steps += steps
            self.motor_steps = (self.motor_steps + steps) & U32_MAX
            return steps
        if phase == PHASE_KVO:
            steps = self.kvo_whole_steps
            acc = self.acc + self.kvo_rem
            if acc >= self.step_cost:
                acc -= self.step_cost
                steps += 1
            self.acc = acc
            steps = self._window_count(steps)
            self.kvo_steps = _sat_add(self.kvo_steps, steps)
            self.motor_steps = (self.motor_steps + steps) & U32_MAX
            return steps
        return 0

    def _end_segment(self):
        if self.limit_steps == self.vtbi_steps:
            self.phase = PHASE_KVO if self.kvo_ul_per_h else PHASE_COMPLETE
        else:
            self.segment_held = 1
            self.rate_whole_steps = 0
            self.rate_rem = 0
        self.bolus_left_steps = 0

    def _window_count(self, steps):
        if steps > self.allow_steps:
            steps = self.allow_steps
            if self.capped_ticks < U32_MAX:
                self.capped_ticks += 1
        counted = steps & self.window_mask    # a prime is not given to the patient
        self.allow_steps -= counted
        self.pumped_steps = (self.pumped_steps + counted) & U32_MAX
        return steps

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks, encoder_count=0):
        """sc_run: one sample, then n_ticks with the same inputs; returns the steps."""
        self.out_fault_tick = 0
        if self.magic != MAGIC:
            self.faults |= FAULT_STATE
            self.out_steps = 0
            return 0
        faults_before = self.faults
        self.sample(downstream_mmhg, encoder_count)   # a fault it latches reads as tick 1
        fault_tick = 0
        steps = 0
        u32_max = U32_MAX   # a local, not a global lookup per tick (see _tick)
        air_present = 1 if air_present else 0
        for i in range(n_ticks):
            steps += self._tick(air_nl, air_present, heartbeat)
            if steps > u32_max:     # saturating add, as sat_add_u32 in the C
                steps = u32_max
            air_nl = 0
            if fault_tick == 0 and self.faults != faults_before:
                fault_tick = i + 1
        self.out_fault_tick = fault_tick
        self.out_steps = steps
        return steps

    def tick(self, air_nl, air_present, heartbeat):
        """sc_tick: one tick, no sample (the device's 10 ms IRQ path); returns the steps."""
        if self.magic != MAGIC:
            self.faults |= FAULT_STATE
            self.out_fault_tick = 0
            self.out_steps = 0
            return 0
        faults_before = self.faults
        steps = self._tick(air_nl, 1 if air_present else 0, heartbeat)
        self.out_fault_tick = 1 if self.faults != faults_before else 0
        self.out_steps = steps
        return steps

    # ---- per sensor sample (sc_sample) ----------------------------------
    def _trend_reset(self):
        """trend_reset of the C: the means start again; the start of the rise stays."""
        self.trend_filled = 0
        self.trend_seg_sum = 0
        self.trend_seg_count = 0
        self.trend_seg_start_steps = self.pumped_steps
        self.trend_capped = self.capped_ticks

    def _trend_rising(self, mean16):
        """trend_rising of the C: 30 mmHg over the turn, every quarter rising >= 2 mmHg,
        none by more than 40 % of the rise (a closed line; a venous step rises once)."""
        step = TREND_STEP_MMHG * 16       # unrolled: no tuple on the heap (PT-8)
        d1 = self.trend_mean1 - self.trend_mean0
        d2 = self.trend_mean2 - self.trend_mean1
        d3 = self.trend_mean3 - self.trend_mean2
        d4 = mean16 - self.trend_mean3
        if d1 < step or d2 < step or d3 < step or d4 < step:
            return False
        most = d1
        if d2 > most:
            most = d2
        if d3 > most:
            most = d3
        if d4 > most:
            most = d4
        rise = mean16 - self.trend_mean0
        return rise >= TREND_RISE_MMHG * 16 and most * 100 <= rise * TREND_SHARE_PCT

    def _flow_ul_per_h(self):
        if self.phase == PHASE_KVO:
            return self.kvo_ul_per_h
        return self.rate_ul_per_h + (self.bolus_rate_ul_per_h if self.bolus_left_steps else 0)

    def _occlusion_trend(self, mmhg):
        """occlusion_trend of the C: segment means one cam turn apart."""
        if self.capped_ticks != self.trend_capped:
            self._trend_reset()         # a cap cut the flow: it resumes later
        if mmhg < -PRESSURE_FLOOR_MMHG:
            v = 0
        elif mmhg > PRESSURE_CEIL_MMHG:
            v = PRESSURE_CEIL_MMHG + PRESSURE_FLOOR_MMHG
        else:
            v = mmhg + PRESSURE_FLOOR_MMHG
        self.trend_seg_sum += v
        self.trend_seg_count += 1
        if ((self.pumped_steps - self.trend_seg_start_steps) & U32_MAX) < TREND_SEGMENT_STEPS \
                and self.trend_seg_count < TREND_MAX_SAMPLES:
            return 0
        mean16 = (self.trend_seg_sum * 16) // self.trend_seg_count
        found = 0
        if self.trend_filled >= TREND_SEGMENTS and self._trend_rising(mean16) and \
                self._flow_ul_per_h() <= TREND_MAX_UL_PER_H:
            found = FAULT_OCCLUSION_DOWN
        if self.trend_filled >= TREND_SEGMENTS and \
                mean16 <= self.trend_mean0 + TREND_QUIET_MMHG * 16:
            self.trend_rise_steps = self.pumped_steps   # the line was not filling up to here
        self.trend_mean0 = self.trend_mean1
        self.trend_mean1 = self.trend_mean2
        self.trend_mean2 = self.trend_mean3
        self.trend_mean3 = mean16
        if self.trend_filled < TREND_SEGMENTS:
            self.trend_filled += 1
        self.trend_seg_start_steps = self.pumped_steps
        self.trend_seg_sum = 0
        self.trend_seg_count = 0
        return found

    def _motion_check(self, count, motor_active):
        """motion_check of the C: encoder pulses against the steps commanded."""
        spp = self.motion_usteps_per_pulse
        pulses = (count - self.motion_count) & U32_MAX
        done = (self.motor_steps - self.motion_seen_steps) & U32_MAX
        self.motion_count = count
        self.motion_seen_steps = self.motor_steps
        if pulses:
            self.motion_pulse_tick = self.ticks
        if spp == 0:
            self.motion_armed = 0
            return 0
        if not self.motion_armed:
            self.motion_armed = 1
            self.motion_debt_steps = spp
            self.motion_since_pulse = 0
            self.motion_reverse_steps = 0
            return 0
        if pulses > 0xFFFF:
            pulses = 0xFFFF
        turned = pulses * spp
        reverse = self.motion_reverse_steps   # the back-off's own pulses are expected
        if reverse > turned:
            reverse = turned
        self.motion_reverse_steps -= reverse
        debt = _sat_add(self.motion_debt_steps, turned - reverse)
        debt = debt - done if debt > done else 0
        self.motion_debt_steps = debt
        if pulses:
            self.motion_since_pulse = 0
        else:
            self.motion_since_pulse = _sat_add(self.motion_since_pulse, done)
        found = 0
        if debt > (MOTION_SLACK_PULSES + 1) * spp:
            found |= FAULT_MOTION_RUNAWAY
        if motor_active and self.motion_since_pulse > MOTION_SLACK_PULSES * spp:
            found |= FAULT_MOTION_STALL
        return found

    def _backoff_more(self, mmhg):
        """backoff_more of the C: a quarter turn more per sample while the line is high."""
        left = self.backoff_max_steps - self.backoff_stop_steps
        if self.faults & FAULT_OCCLUSION_DOWN and self.phase == PHASE_PAUSED and \
                self.backoff_steps == 0 and self.turned_steps == self.reversed_steps and \
                mmhg > BACKOFF_TARGET_MMHG and left:
            self.backoff_steps = left if left < TREND_SEGMENT_STEPS else TREND_SEGMENT_STEPS
            self.backoff_stop_steps += self.backoff_steps

    def sample(self, downstream_mmhg, encoder_count):
        """sc_sample: one sensor sample; returns the latched faults."""
        if self.magic != MAGIC:
            self.faults |= FAULT_STATE
            return self.faults
        motor_active = self.phase == PHASE_RUNNING or self.phase == PHASE_KVO
        found = 0
        if downstream_mmhg <= self.occlusion_limit_mmhg:
            self.occlusion_over = 0
        else:
            if not self.occlusion_over:
                self.occlusion_over = 1
                self.occlusion_since_tick = self.ticks
            if self.ticks - self.occlusion_since_tick >= OCCLUSION_DEBOUNCE_TICKS:
                found = FAULT_OCCLUSION_DOWN
        if motor_active and self.window_mask and not self.segment_held:
            found |= self._occlusion_trend(downstream_mmhg)
        else:
            self._trend_reset()         # stopped, priming or holding: no trend
        if not motor_active:
            found = 0
            self._backoff_more(downstream_mmhg)
        found |= self._motion_check(encoder_count, motor_active)
        found &= ~self.faults
        if found:
            self.faults |= found
            if motor_active:
                if found & FAULT_OCCLUSION_DOWN:
                    # SR-CORE-4: run back what filled the line since it was last quiet
                    back = (self.pumped_steps - self.trend_rise_steps) & U32_MAX
                    m = self.backoff_max_steps
                    self.backoff_steps = back if back < m else m
                    self.backoff_stop_steps = self.backoff_steps
                    self.trend_rise_steps = self.pumped_steps   # the back-off relieves it
                self.phase = PHASE_PAUSED
                self.bolus_left_steps = 0
        return self.faults

    def take_backoff(self):
        """sc_take_backoff: the reverse microsteps an occlusion stop decided, once."""
        if self.magic != MAGIC:
            return 0
        back = self.backoff_steps
        self.backoff_steps = 0
        self.reversed_steps = _sat_add(self.reversed_steps, back)
        return back

    def backoff_done(self, usteps):
        """sc_backoff_done: the motor turned back by usteps; their pulses are expected."""
        if self.magic == MAGIC:
            self.motion_reverse_steps = _sat_add(self.motion_reverse_steps, usteps)
            self.turned_steps = _sat_add(self.turned_steps, usteps)

    def set_motion_check(self, usteps_per_pulse):
        """sc_set_motion_check: None or the refusal (code, field, limit)."""
        if self.magic != MAGIC:
            return (ERR_STATE, FIELD_NONE, 0)
        if self.phase == PHASE_RUNNING or self.phase == PHASE_KVO:
            return (ERR_BUSY, FIELD_NONE, 0)
        if usteps_per_pulse:
            r = _check_range(FIELD_USTEPS_PER_PULSE, usteps_per_pulse,
                             USTEPS_PER_PULSE_MIN, USTEPS_PER_PULSE_MAX)
            if r:
                return r
        self.motion_usteps_per_pulse = usteps_per_pulse
        self.motion_armed = 0
        return None

    def acknowledge(self, downstream_mmhg, air_present, heartbeat, encoder_count=0):
        """sc_acknowledge: clear each latched fault whose cause is gone."""
        if self.magic != MAGIC:
            return FAULT_STATE
        f = self.faults
        if f & FAULT_OCCLUSION_DOWN and downstream_mmhg <= self.occlusion_limit_mmhg:
            f &= ~FAULT_OCCLUSION_DOWN
            self.occlusion_over = 0
            self._trend_reset()
        if f & FAULT_MOTION_STALL:
            # a stall cannot be seen while stopped: the clinician has checked the set
            f &= ~FAULT_MOTION_STALL
            self.motion_armed = 0
        if f & FAULT_MOTION_RUNAWAY and encoder_count == self.motion_count and \
                self.ticks - self.motion_pulse_tick >= MOTION_QUIET_TICKS:
            f &= ~FAULT_MOTION_RUNAWAY      # no pulse for a minute, nor since the last sample
            self.motion_armed = 0
        if f & FAULT_AIR_BUBBLE and not air_present:
            f &= ~FAULT_AIR_BUBBLE
            self.air_run_nl = 0
        if f & FAULT_AIR_CUMULATIVE and not air_present:
            f &= ~FAULT_AIR_CUMULATIVE
            for i in range(AIR_BUCKETS):
                self.air_bucket_nl[i] = 0
            self.air_window_nl = 0
        if f & FAULT_HEARTBEAT and (heartbeat != self.last_heartbeat or
                                    self.heartbeat_age_ticks <= HEARTBEAT_TIMEOUT_TICKS):
            # the application is alive again: a new heartbeat now, or one seen recently
            f &= ~FAULT_HEARTBEAT
            self.last_heartbeat = heartbeat
            self.heartbeat_age_ticks = 0
        self.faults = f
        return f

    def snapshot(self):
        """Every field of sc_state_t in declaration order: the scalars, then the arrays."""
        return tuple(getattr(self, name) for name in STATE_SCALARS) + (
            tuple(self.air_bucket_nl), tuple(self.win_steps), tuple(self.win_boluses))
