"""The application's alarm conditions (SR-AL-1): HAL readings and volumes -> alarms.

Owns every condition the application (channel B) detects itself, called once per
control cycle by ``PumpApp.cycle()`` through ``AlarmChecks.run(now)``: step-generator
overruns (MOTOR_DRIVE), door, battery (with the time remaining), reservoir from the
volume tracked, upstream occlusion, free flow and motor/encoder stall from the cam
encoder against the steps issued, pressure sensors outside their valid raw range, and
paused too long.  The safety core's own faults (downstream occlusion, air, heartbeat)
are mapped in ``firmware/app.py``.  Priorities, actions and clear rules are in the
one table, ``firmware/alarms.py``; a HIGH alarm raised here while delivering stops
delivery (``app.pause()``; ``app.cut_motor()`` too when the mechanism misbehaves).

Every threshold is here, in one place.  The per-cycle path allocates nothing: small
ints and attribute reads only (PT-8, tests/test_micropython_heap.py).
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from firmware import alarms as al

# A leading underscore makes a const() private to this module: MicroPython folds it into
# the code, with no global and no qstr on the heap (PT-8, tests/test_micropython_heap.py).
# ---- battery: one Li-ion cell (sim/battery.py models the same cell) -------------------
_BATTERY_LOW_MV = const(3500)        # ~6 % left: about 4 h at 10 mL/h
_BATTERY_DEPLETED_MV = const(3300)   # stop before brown-out
BATTERY_CAPACITY_MAH = const(2000)  # unless the board file names BATTERY_CAPACITY_MAH
# open-circuit voltage -> charge left, per mille (piecewise linear between the points)
_SOC_MV = const((3300, 3600, 4200))
_SOC_PERMILLE = const((0, 100, 1000))
_IDLE_UA = const(25000)              # MCU, display, sensors
_MOTOR_UA_AT_MAX = const(300000)     # driver current at the maximum step rate
_MAX_USTEPS_PER_S = const(20000)
_DRAW_WINDOW_MS = const(60000)       # the average draw: steps issued over the last minute
_MIN_LEFT_MAX = const(5999)          # shown as at most 99 h 59 min

# ---- reservoir (app.reservoir_ul: the bag's volume at programming; None = unknown) -----
# LOW when what is left is at most max(10 % of the bag, 30 min at the current rate);
# EMPTY when nothing is left.  Left = reservoir_ul - delivered - KVO delivered.
_RESERVOIR_LOW_PERCENT = const(10)
_RESERVOIR_LOW_MINUTES = const(30)

# ---- upstream occlusion: upstream pressure below the limit for the debounce time while
# delivering (a closed upstream clamp or an empty bag: the cam pulls a vacuum) ----------
UP_OCCLUSION_MMHG = const(-60)
_UP_OCCLUSION_MS = const(5000)

# ---- motion (cam encoder against the microsteps issued) ------------------------------
_STALL_PULSES = const(2)        # steps worth this many pulses done, no pulse: stall
_FREE_FLOW_PULSES = const(2)    # this many pulses more than the steps done: free flow
FREE_FLOW_QUIET_MS = const(60000)  # free flow's cause is gone after this long without a
#                                    pulse that no step explains

# ---- pressure sensors: valid raw ADC range (outside: disconnected / stuck at a rail) ---
_SENSOR_RAW_MIN = const(16)
_SENSOR_RAW_MAX = const(4080)
SENSOR_BAD_CYCLES = const(3)   # consecutive cycles out of range before the alarm


def soc_permille(mv):
    """Charge left (per mille) from the cell voltage, by the table above."""
    if mv <= _SOC_MV[0]:
        return 0
    i = 1
    while i < len(_SOC_MV) - 1 and mv > _SOC_MV[i]:
        i += 1
    if mv >= _SOC_MV[i]:
        return _SOC_PERMILLE[i]
    lo_mv = _SOC_MV[i - 1]
    lo = _SOC_PERMILLE[i - 1]
    return lo + (_SOC_PERMILLE[i] - lo) * (mv - lo_mv) // (_SOC_MV[i] - lo_mv)


def minutes_left(mv, draw_ua, capacity_mah=BATTERY_CAPACITY_MAH):
    """Battery time remaining (min) at ``draw_ua`` from the charge the voltage shows."""
    mah = capacity_mah * soc_permille(mv) // 1000
    left = mah * 60000 // draw_ua if draw_ua > 0 else _MIN_LEFT_MAX
    return left if left < _MIN_LEFT_MAX else _MIN_LEFT_MAX


def reservoir_low_ul(bag_ul, rate_ul_per_h):
    """RESERVOIR LOW at or below this volume left: 10 % of the bag or 30 min at the
    current rate, whichever is larger."""
    low = rate_ul_per_h * _RESERVOIR_LOW_MINUTES // 60
    tenth = bag_ul * _RESERVOIR_LOW_PERCENT // 100
    return tenth if tenth > low else low


class AlarmChecks:
    """Per-cycle alarm conditions of one application; ``run(now)`` every cycle."""

    def __init__(self, app):
        self.app = app
        hal = app.hal
        board = hal.board
        self.capacity_mah = getattr(board, "BATTERY_CAPACITY_MAH", BATTERY_CAPACITY_MAH)
        ppr = hal.encoder.pulses_per_rev or 1
        self.steps_per_pulse = getattr(board, "USTEPS_PER_REV", 3200) // ppr
        # pressure limits in mmHg of the valid raw range, by the board's calibration
        # (a fallback board without calibration: the POST has failed already, no check)
        off = getattr(board, "PRESSURE_ADC_OFFSET", None)
        if off is None:
            self.sensor_min_mmhg = -0x3FFFFFFF
            self.sensor_max_mmhg = 0x3FFFFFFF
        else:
            num = board.PRESSURE_MMHG_PER_COUNT_NUM
            den = board.PRESSURE_MMHG_PER_COUNT_DEN
            self.sensor_min_mmhg = (_SENSOR_RAW_MIN - off) * num // den
            self.sensor_max_mmhg = (_SENSOR_RAW_MAX - off) * num // den
        self.down_bad = 0
        self.up_bad = 0
        self.last_upstream_mmhg = 0
        self.up_low_ms = 0
        # motion: encoder and steps at the last cycle, steps issued then (done by now)
        self.enc_last = hal.encoder.count()
        self.steps_last = self._steps_moved()
        self.steps_pending = 0
        self.since_pulse = 0          # steps done since the last encoder pulse
        self.credit = 0               # steps done minus the pulses seen (in steps)
        self.free_pulse_ms = -FREE_FLOW_QUIET_MS
        # battery time remaining: average draw over _DRAW_WINDOW_MS of steps issued
        self.draw_ua = _IDLE_UA
        self.draw_from_ms = hal.clock.ticks_ms()
        self.draw_from_steps = self.steps_last
        self.battery_min_left = None  # minutes; None before the first reading
        self.min_left_mv = 0          # the voltage it was computed from

    def run(self, now):
        """All checks, once per cycle (after the core ran this cycle's ticks)."""
        app = self.app
        hal = app.hal
        phase = app.core.phase
        # two compares, not `in (a, b)`: that tuple would be built every cycle
        delivering = phase == sc.PHASE_RUNNING or phase == sc.PHASE_KVO
        overruns = hal.stepper.overruns()
        if overruns != app.last_overruns:     # the step generator refused a move
            app.last_overruns = overruns
            app.system_error("step generator refused %d moves" % overruns, al.MOTOR_DRIVE)
            delivering = False
        delivering = self._door(now, delivering)
        delivering = self._battery(now, delivering)
        delivering = self._motion(now, delivering)
        delivering = self._reservoir(now, delivering)
        delivering = self._upstream(now, delivering)
        self._sensors(now)
        self._paused_too_long(now)

    # ---- helpers -------------------------------------------------------------------
    def _stop(self, alarm_id, now, delivering, cut=False):
        """Raise a delivery-stopping alarm; pause (and cut the driver) when it is new."""
        app = self.app
        if app.alarms.raise_alarm(alarm_id, now) and delivering:
            app.pause()
            if cut:
                app.cut_motor()
            return False
        return delivering

    def _gone(self, alarm_id):
        alarms = self.app.alarms
        if alarms.is_active(alarm_id):
            alarms.cause_gone(alarm_id)

    # ---- the checks ----------------------------------------------------------------
    def _door(self, now, delivering):
        if not self.app.hal.door.closed():
            return self._stop(al.DOOR_OPEN, now, delivering)
        self._gone(al.DOOR_OPEN)
        return delivering

    def _battery(self, now, delivering):
        app = self.app
        mv = app.hal.battery.voltage_mv()
        app.last_battery_mv = mv
        if now - self.draw_from_ms >= _DRAW_WINDOW_MS:
            steps = self.steps_last
            rate = (steps - self.draw_from_steps) * 1000 // (now - self.draw_from_ms)
            self.draw_ua = _IDLE_UA + _MOTOR_UA_AT_MAX * rate // _MAX_USTEPS_PER_S
            self.draw_from_ms = now
            self.draw_from_steps = steps
            self.battery_min_left = None       # computed again below with the new draw
        if self.battery_min_left is None or mv != self.min_left_mv:
            self.min_left_mv = mv
            self.battery_min_left = minutes_left(mv, self.draw_ua, self.capacity_mah)
        if mv <= _BATTERY_DEPLETED_MV:
            delivering = self._stop(al.BATTERY_DEPLETED, now, delivering)
        else:
            self._gone(al.BATTERY_DEPLETED)
        if mv <= _BATTERY_LOW_MV:
            app.alarms.raise_alarm(al.BATTERY_LOW, now)
        else:
            self._gone(al.BATTERY_LOW)
        return delivering

    def motion_acknowledged(self):
        """An acknowledge: the motion check starts afresh (as the core's re-arms), so a
        runaway that channel A stopped first leaves no banked debt behind for the restart."""
        self.credit = 0
        self.since_pulse = 0

    def _steps_moved(self):
        """Microsteps the motor turned either way: the stepper counts the back-off's
        reverse ones negative (SR-CORE-4), the encoder sees them as turning."""
        back = getattr(self.app.driver, "backoff_issued", 0)
        return self.app.hal.stepper.steps_issued() + 2 * back

    def _motion(self, now, delivering):
        """Stall: steps done worth _STALL_PULSES pulses and no pulse.  Free flow: pulses
        beyond the steps done by _FREE_FLOW_PULSES (the cam turns by itself)."""
        hal = self.app.hal
        enc = hal.encoder.count()
        steps = self._steps_moved()
        d_enc = enc - self.enc_last
        self.enc_last = enc
        new = steps - self.steps_last        # issued this cycle: maybe not done yet
        self.steps_last = steps
        done = self.steps_pending            # issued last cycle: done by now
        self.steps_pending = new
        spp = self.steps_per_pulse
        credit = self.credit + done
        if d_enc > 0:
            self.since_pulse = 0
            credit -= d_enc * spp
            if done == 0:
                self.free_pulse_ms = now     # a pulse no step explains
        else:
            self.since_pulse += done
        # at most one pulse's worth banked: a lagging encoder hides no later free flow
        self.credit = credit if credit < spp else spp
        if self.credit < -_FREE_FLOW_PULSES * spp - new:
            self.credit = 0
            self.free_pulse_ms = now
            delivering = self._stop(al.FREE_FLOW, now, delivering, True)
        elif now - self.free_pulse_ms >= FREE_FLOW_QUIET_MS and \
                not self.app.core.faults & sc.FAULT_MOTION_RUNAWAY:
            self._gone(al.FREE_FLOW)     # channel A's latch needs its own acknowledge
        if self.since_pulse > _STALL_PULSES * spp:
            self.since_pulse = 0
            delivering = self._stop(al.MOTOR_ENCODER, now, delivering, True)
        return delivering

    def _reservoir(self, now, delivering):
        app = self.app
        bag = app.reservoir_ul
        if bag is None:
            self._gone(al.RESERVOIR_EMPTY)
            self._gone(al.RESERVOIR_LOW)
            return delivering
        core = app.core
        left = bag - core.delivered_ul() - core.kvo_ul()
        prog = app.program
        rate = 0
        if prog is not None:
            rate = prog[2] if core.phase == sc.PHASE_KVO else prog[0]
        if left <= 0:
            delivering = self._stop(al.RESERVOIR_EMPTY, now, delivering)
        else:
            self._gone(al.RESERVOIR_EMPTY)
        if left <= reservoir_low_ul(bag, rate):
            app.alarms.raise_alarm(al.RESERVOIR_LOW, now)
        else:
            self._gone(al.RESERVOIR_LOW)
        return delivering

    def _upstream(self, now, delivering):
        mmhg = self.app.hal.pressure_up.read_mmhg()
        self.last_upstream_mmhg = mmhg
        if mmhg >= UP_OCCLUSION_MMHG:
            self.up_low_ms = 0
            self._gone(al.OCCLUSION_UP)
        elif delivering:
            self.up_low_ms += self.app.cycle_ms
            if self.up_low_ms >= _UP_OCCLUSION_MS:
                delivering = self._stop(al.OCCLUSION_UP, now, delivering)
        return delivering

    def _sensors(self, now):
        lo = self.sensor_min_mmhg
        hi = self.sensor_max_mmhg
        mmhg = self.app.last_downstream_mmhg
        self.down_bad = self.down_bad + 1 if mmhg < lo or mmhg > hi else 0
        mmhg = self.last_upstream_mmhg
        self.up_bad = self.up_bad + 1 if mmhg < lo or mmhg > hi else 0
        if (self.down_bad >= SENSOR_BAD_CYCLES or self.up_bad >= SENSOR_BAD_CYCLES) and \
                not self.app.alarms.is_active(al.SENSOR_RANGE):
            self.app.system_error("pressure sensor out of range", al.SENSOR_RANGE)

    def _paused_too_long(self, now):
        app = self.app
        if app.paused_since_ms is not None and app.core.phase == sc.PHASE_PAUSED:
            # an informational (LOW) alarm such as a soft-limit override does not hide it
            if now - app.paused_since_ms >= al.PAUSED_TOO_LONG_MS and \
                    app.alarms.top_priority() <= al.PRIORITY_LOW:
                app.alarms.raise_alarm(al.PAUSED_TOO_LONG, now)
