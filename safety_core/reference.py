"""Pure-Python reference of the safety core: the executable specification.

Owns the same behaviour as ``safety_core/src/safety_core.c``, bit for bit:
program validation (SR-CORE-1), exact rate -> microstep accounting, VTBI
stop and KVO (SR-CORE-2), downstream occlusion (SR-CORE-3), single-bubble
and rolling 15-minute air (SR-CORE-5), heartbeat (SR-CORE-7) and fault
latching (SR-CORE-8).  Every C ``uint32_t`` is a Python int kept in
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


def validate_program(rate_ul_per_h, vtbi_ul, kvo_ul_per_h, hard_min_rate_ul_per_h,
                     hard_max_rate_ul_per_h, occlusion_limit_mmhg, bubble_limit_ul):
    """Return None if valid, else (code, field, limit) exactly as the C does."""
    rate_min = RATE_MIN_UL_PER_H
    rate_max = RATE_MAX_UL_PER_H
    if hard_min_rate_ul_per_h != 0:
        r = _check_range(FIELD_HARD_MIN_RATE, hard_min_rate_ul_per_h,
                         RATE_MIN_UL_PER_H, RATE_MAX_UL_PER_H)
        if r:
            return r
        rate_min = hard_min_rate_ul_per_h
    if hard_max_rate_ul_per_h != 0:
        r = _check_range(FIELD_HARD_MAX_RATE, hard_max_rate_ul_per_h,
                         rate_min, RATE_MAX_UL_PER_H)
        if r:
            return r
        rate_max = hard_max_rate_ul_per_h
    r = _check_range(FIELD_RATE, rate_ul_per_h, rate_min, rate_max)
    if r:
        return r
    if rate_ul_per_h % RATE_STEP_UL_PER_H:
        return (ERR_NOT_MULTIPLE, FIELD_RATE, RATE_STEP_UL_PER_H)
    r = _check_range(FIELD_VTBI, vtbi_ul, VTBI_MIN_UL, VTBI_MAX_UL)
    if r:
        return r
    if kvo_ul_per_h != 0:
        kvo_max = rate_ul_per_h if rate_ul_per_h < KVO_MAX_UL_PER_H else KVO_MAX_UL_PER_H
        r = _check_range(FIELD_KVO, kvo_ul_per_h, KVO_MIN_UL_PER_H, kvo_max)
        if r:
            return r
        if kvo_ul_per_h % RATE_STEP_UL_PER_H:
            return (ERR_NOT_MULTIPLE, FIELD_KVO, RATE_STEP_UL_PER_H)
    r = _check_range(FIELD_OCCLUSION_LIMIT, occlusion_limit_mmhg,
                     OCCLUSION_MIN_MMHG, OCCLUSION_MAX_MMHG)
    if r:
        return r
    return _check_range(FIELD_BUBBLE_LIMIT, bubble_limit_ul, BUBBLE_MIN_UL, BUBBLE_MAX_UL)


class ReferenceCore:
    """State and operations of one safety core, mirroring sc_state_t."""

    def __init__(self):
        self.magic = 0
        self.air_bucket_nl = [0] * AIR_BUCKETS
        self._zero()

    def _zero(self):
        self.ustep_volume_pl = 0
        self.step_cost = 0
        self.phase = PHASE_IDLE
        self.faults = 0
        # program (same order as sc_program_t)
        self.rate_ul_per_h = 0
        self.vtbi_ul = 0
        self.kvo_ul_per_h = 0
        self.hard_min_rate_ul_per_h = 0
        self.hard_max_rate_ul_per_h = 0
        self.occlusion_limit_mmhg = 0
        self.bubble_limit_ul = 0
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
        self.occlusion_ticks = 0
        self.air_run_nl = 0
        self.air_window_nl = 0
        self.air_bucket_index = 0
        self.air_bucket_age_ticks = 0
        b = self.air_bucket_nl
        for i in range(AIR_BUCKETS):
            b[i] = 0
        # outputs of the last run
        self.out_steps = 0
        self.out_fault_tick = 0

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
        return None

    def load_program(self, rate_ul_per_h, vtbi_ul, kvo_ul_per_h, hard_min_rate_ul_per_h,
                     hard_max_rate_ul_per_h, occlusion_limit_mmhg, bubble_limit_ul):
        """sc_load_program: returns None or the refusal (code, field, limit)."""
        if self.magic != MAGIC:
            return (ERR_STATE, FIELD_NONE, 0)
        if self.phase == PHASE_RUNNING or self.phase == PHASE_KVO:
            return (ERR_BUSY, FIELD_NONE, 0)
        r = validate_program(rate_ul_per_h, vtbi_ul, kvo_ul_per_h, hard_min_rate_ul_per_h,
                             hard_max_rate_ul_per_h, occlusion_limit_mmhg, bubble_limit_ul)
        if r:
            return r
        self.rate_ul_per_h = rate_ul_per_h
        self.vtbi_ul = vtbi_ul
        self.kvo_ul_per_h = kvo_ul_per_h
        self.hard_min_rate_ul_per_h = hard_min_rate_ul_per_h
        self.hard_max_rate_ul_per_h = hard_max_rate_ul_per_h
        self.occlusion_limit_mmhg = occlusion_limit_mmhg
        self.bubble_limit_ul = bubble_limit_ul
        self.rate_whole_steps, self.rate_rem = divmod(
            rate_ul_per_h * TICK_MS * UNITS_PER_UL_PER_H_MS, self.step_cost)
        self.kvo_whole_steps, self.kvo_rem = divmod(
            kvo_ul_per_h * TICK_MS * UNITS_PER_UL_PER_H_MS, self.step_cost)
        self.vtbi_steps = _vtbi_to_steps(vtbi_ul, self.ustep_volume_pl)
        self.bubble_limit_nl = bubble_limit_ul * 1000
        self.acc = 0
        self.delivered_steps = 0
        self.kvo_steps = 0
        self.occlusion_ticks = 0
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
        self.occlusion_ticks = 0
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

    # The constants live in safety_core/constants.py: imported, they are global lookups
    # for MicroPython, no longer const() inlined here.  The ones read on every tick are
    # bound as default arguments of the same name (locals, set once at definition): a
    # global lookup each would slow the tick by ~15-20 % under MicroPython (unix port).
    # run() never passes them.
    def _tick(self, downstream_mmhg, air_nl, air_present, heartbeat,
              PHASE_RUNNING=PHASE_RUNNING, PHASE_KVO=PHASE_KVO, PHASE_IDLE=PHASE_IDLE,
              U32_MAX=U32_MAX, AIR_BUCKET_TICKS=AIR_BUCKET_TICKS,
              AIR_CUMULATIVE_LIMIT_NL=AIR_CUMULATIVE_LIMIT_NL,
              OCCLUSION_DEBOUNCE_TICKS=OCCLUSION_DEBOUNCE_TICKS,
              HEARTBEAT_TIMEOUT_TICKS=HEARTBEAT_TIMEOUT_TICKS):
        phase = self.phase
        motor_active = phase == PHASE_RUNNING or phase == PHASE_KVO
        if self.ticks < U32_MAX:
            self.ticks += 1
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
            idx = self.air_bucket_index
            self.air_bucket_nl[idx] = _sat_add(self.air_bucket_nl[idx], air_nl)
            self.air_window_nl = _sat_add(self.air_window_nl, air_nl)
        if phase != PHASE_IDLE:
            if self.air_run_nl >= self.bubble_limit_nl:
                found |= FAULT_AIR_BUBBLE
            if self.air_window_nl > AIR_CUMULATIVE_LIMIT_NL:
                found |= FAULT_AIR_CUMULATIVE
        # downstream occlusion (SR-CORE-3)
        if downstream_mmhg > self.occlusion_limit_mmhg:
            if self.occlusion_ticks < U32_MAX:
                self.occlusion_ticks += 1
        else:
            self.occlusion_ticks = 0
        if motor_active:
            if self.occlusion_ticks >= OCCLUSION_DEBOUNCE_TICKS:
                found |= FAULT_OCCLUSION_DOWN
            if self.heartbeat_age_ticks > HEARTBEAT_TIMEOUT_TICKS:
                found |= FAULT_HEARTBEAT
        if found:
            self.faults |= found
            if motor_active:
                self.phase = PHASE_PAUSED
        if self.faults:
            return 0
        # schedule (exact Bresenham; VTBI clamp SR-CORE-2)
        if phase == PHASE_RUNNING:
            left = self.vtbi_steps - self.delivered_steps
            steps = self.rate_whole_steps
            acc = self.acc + self.rate_rem
            if acc >= self.step_cost:
                acc -= self.step_cost
                steps += 1
            self.acc = acc
            if steps >= left:
                steps = left
                self.phase = PHASE_KVO if self.kvo_ul_per_h else PHASE_COMPLETE
            self.delivered_steps += steps
            return steps
        if phase == PHASE_KVO:
            steps = self.kvo_whole_steps
            acc = self.acc + self.kvo_rem
            if acc >= self.step_cost:
                acc -= self.step_cost
                steps += 1
            self.acc = acc
            self.kvo_steps = _sat_add(self.kvo_steps, steps)
            return steps
        return 0

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks):
        """sc_run: advance n_ticks with the same inputs; returns the steps."""
        self.out_fault_tick = 0
        if self.magic != MAGIC:
            self.faults |= FAULT_STATE
            self.out_steps = 0
            return 0
        faults_before = self.faults
        fault_tick = 0
        steps = 0
        u32_max = U32_MAX   # a local, not a global lookup per tick (see _tick)
        air_present = 1 if air_present else 0
        for i in range(n_ticks):
            steps += self._tick(downstream_mmhg, air_nl, air_present, heartbeat)
            if steps > u32_max:     # saturating add, as sat_add_u32 in the C
                steps = u32_max
            air_nl = 0
            if fault_tick == 0 and self.faults != faults_before:
                fault_tick = i + 1
        self.out_fault_tick = fault_tick
        self.out_steps = steps
        return steps

    def acknowledge(self, downstream_mmhg, air_present, heartbeat):
        """sc_acknowledge: clear each latched fault whose cause is gone."""
        if self.magic != MAGIC:
            return FAULT_STATE
        f = self.faults
        if f & FAULT_OCCLUSION_DOWN and downstream_mmhg <= self.occlusion_limit_mmhg:
            f &= ~FAULT_OCCLUSION_DOWN
            self.occlusion_ticks = 0
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
        """Every field of sc_state_t, in declaration order."""
        return (self.magic, self.ustep_volume_pl, self.step_cost, self.phase, self.faults,
                self.rate_ul_per_h, self.vtbi_ul, self.kvo_ul_per_h,
                self.hard_min_rate_ul_per_h, self.hard_max_rate_ul_per_h,
                self.occlusion_limit_mmhg, self.bubble_limit_ul,
                self.rate_whole_steps, self.rate_rem, self.kvo_whole_steps, self.kvo_rem,
                self.acc, self.vtbi_steps, self.delivered_steps, self.kvo_steps,
                self.bubble_limit_nl, self.ticks, self.last_heartbeat,
                self.heartbeat_age_ticks, self.occlusion_ticks, self.air_run_nl,
                self.air_window_nl, self.air_bucket_index, self.air_bucket_age_ticks,
                tuple(self.air_bucket_nl))
