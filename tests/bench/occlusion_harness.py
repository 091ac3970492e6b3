"""Shared harness of the PT-4 / PT-5 benches: one simulated pump stepped cycle by cycle.

Builds the pump the way ``sim/scenario.py`` and ``tests/bench/pt3_trumpet.py`` do
(``sim.world.World`` + ``hal.sim.make_sim_hal(world, cycle_ms)`` + ``firmware.app.PumpApp``,
``boot``, ``program_continuous``, ``start``) and steps it: ``app.cycle()`` reads the sensors
at world time t and commands the cycle's steps, then ``world.advance(cycle_ms)`` emits them.
The cycle length is the HAL board's ``CYCLE_MS`` (``make_sim_hal(world, cycle_ms)``), which
``PumpApp`` hands to ``BatchDoseDriver(core, stepper, cycle_ms)``: ``cycle_ms / 10`` core ticks
per cycle, all with the cycle's one pressure sample.  1000 ms is the simulator's cycle, 100 ms
the device's (where the core ticks in a 10 ms IRQ; in the sim the 10 ticks of a 100 ms cycle
still share one sample).  Both run here; nothing in the sim prevents 100 ms cycles.

Definitions used by the benches (the docstrings of the benches repeat them):

* time to alarm: ``t_alarm - t_clamp``, where ``t_clamp`` is the world time at which the
  downstream clamp closed (before the cycle at that time) and ``t_alarm`` the world time of
  the first ``app.cycle()`` after which ``OCCLUSION_DOWN`` is among the active alarms
  (resolution: one cycle).
* release bolus (``release_bolus_ul``): with ``t_r`` the world time of the release and
  ``W`` = 300 s,  ``excess = (V_patient(t_r + W) - V_patient(t_r)) - r * T_run / 3600`` uL,
  where ``V_patient`` is ``world.delivered_to_patient_ul``, ``r`` the programmed rate (uL/h)
  and ``T_run`` the seconds of ``[t_r, t_r + W)`` during which the pump was delivering: a
  cycle ``[t, t + cycle_ms)`` counts when the core's phase after that cycle's ``app.cycle()``
  is RUNNING.  After an occlusion alarm the pump stays stopped (nobody restarts it), so
  ``T_run`` is 0 and the excess is all the volume the line releases; when no alarm fired
  the pump runs the whole window and the excess is what the line stored on top of the rate.
  It is computed whether or not an alarm fired.

Portable (CPython and the MicroPython unix port): ``python -m tests.bench.occlusion_harness
RATE LIMIT PRESET CYCLE_MS`` prints one occlusion run as JSON (``pt4_occlusion.py
--runtime micropython`` runs it under ``.venv/bin/micropython``).
"""
import json
import sys

import safety_core as sc
from firmware import alarms as al
from firmware.app import PumpApp, DEFAULT_BUBBLE_LIMIT_UL, DEFAULT_OCCLUSION_LIMIT_MMHG
from hal.sim import make_sim_hal
from sim.world import World

RELEASE_WINDOW_S = 300          # PT-4: "in the 5 min after release"
PRE_RUN_S = 600                 # steady state before the clamp (>= one cam turn at 0.5 mL/h)
MAX_WAIT_S = 3600               # cap on the wait for the occlusion alarm
RELEASE_AFTER_S = 60            # the nurse opens the clamp this long after the alarm
MAX_VTBI_UL = 9999000           # the core's VTBI ceiling

class ReleaseMeter:
    """The release bolus, accumulated cycle by cycle (no trace kept: fits MicroPython's heap).

    ``add(t_ms, patient_ul, running)`` for each sample in time order, the first at the
    release; ``running`` tells whether the pump delivered from that sample to the next.
    ``result()`` -> ``(excess_ul, patient_ul, run_s)``: patient volume over the window,
    seconds running in it, and the patient volume minus ``rate * run_s / 3600``."""

    def __init__(self, rate_ul_per_h, window_s=RELEASE_WINDOW_S):
        self.rate = rate_ul_per_h
        self.window_ms = window_s * 1000
        self.t0 = None
        self.v0 = None
        self.end = None
        self.v_end = None
        self.run_ms = 0
        self.last = None            # (t_ms, running) of the previous sample

    def add(self, t_ms, patient_ul, running):
        if self.t0 is None:
            self.t0 = t_ms
            self.v0 = patient_ul
            self.end = t_ms + self.window_ms
        elif self.last is not None:
            t_prev, run_prev = self.last
            if t_ms < t_prev:
                raise ValueError("samples out of time order")
            if run_prev and t_prev < self.end:
                self.run_ms += (t_ms if t_ms < self.end else self.end) - t_prev
        if self.v_end is None and t_ms >= self.end:
            self.v_end = patient_ul
        self.last = (t_ms, running)

    @property
    def done(self):
        return self.v_end is not None

    def result(self):
        if self.t0 is None:
            raise ValueError("no samples")
        if self.v_end is None:
            raise ValueError("samples end %d ms before the window" %
                             (self.end - self.last[0]))
        patient = self.v_end - self.v0
        run_s = self.run_ms / 1000.0
        return patient - self.rate * run_s / 3600.0, patient, run_s


def release_bolus_ul(samples, rate_ul_per_h, window_s=RELEASE_WINDOW_S):
    """Excess volume to the patient in ``window_s`` after a release (``ReleaseMeter``).

    ``samples``: [(t_ms, patient_ul, running), ...] in time order, the first at the release;
    they must reach the window's end.  Returns ``(excess_ul, patient_ul, run_s)``."""
    m = ReleaseMeter(rate_ul_per_h, window_s)
    for t, v, running in samples:
        m.add(t, v, running)
    return m.result()


class Pump:
    """World + sim HAL + PumpApp, stepped one cycle at a time."""

    def __init__(self, preset="picc", seed=1, cycle_ms=1000, world_kw=None, make_app=None):
        self.world = World(preset=preset, seed=seed, **(world_kw or {}))
        self.hal = make_sim_hal(self.world, cycle_ms=cycle_ms)
        self.app = (make_app or PumpApp)(self.hal)
        self.app.boot()
        self.cycle_ms = cycle_ms
        self.rate_ul_per_h = 0
        self.running = False        # core phase RUNNING after the last app.cycle()

    def program(self, rate_ul_per_h, vtbi_ul=None,
                occlusion_limit_mmhg=DEFAULT_OCCLUSION_LIMIT_MMHG,
                bubble_limit_ul=DEFAULT_BUBBLE_LIMIT_UL, start=True):
        if vtbi_ul is None:
            vtbi_ul = MAX_VTBI_UL
        self.rate_ul_per_h = rate_ul_per_h
        self.app.program_continuous(rate_ul_per_h=rate_ul_per_h, vtbi_ul=vtbi_ul,
                                    occlusion_limit_mmhg=occlusion_limit_mmhg,
                                    bubble_limit_ul=bubble_limit_ul)
        if start:
            self.app.start()
        self.running = self.app.core.phase == sc.PHASE_RUNNING

    @property
    def t_ms(self):
        return self.world.t_ms

    def alarm(self, alarm_id):
        return alarm_id in self.app.alarms.active

    def cycle_app(self):
        """The firmware's cycle at the current world time (sensors -> core -> steps)."""
        self.app.cycle()
        self.running = self.app.core.phase == sc.PHASE_RUNNING

    def advance(self):
        self.world.advance(self.cycle_ms)

    def step(self):
        self.cycle_app()
        self.advance()

    def run_s(self, seconds):
        for _ in range(seconds * 1000 // self.cycle_ms):
            self.step()

    def restart(self):
        """A nurse: acknowledge, then start again; True if the pump runs again."""
        app = self.app
        app.acknowledge()
        try:
            app.start()
        except sc.CoreRefused:
            return False
        self.running = app.core.phase == sc.PHASE_RUNNING
        return self.running

    def measure_release(self, window_s=RELEASE_WINDOW_S):
        """Step ``window_s`` from now (the release); returns ReleaseMeter.result()."""
        w = self.world
        m = ReleaseMeter(self.rate_ul_per_h, window_s)
        while not m.done:
            t = w.t_ms
            v = w.delivered_to_patient_ul
            self.cycle_app()
            m.add(t, v, self.running)
            self.advance()
        return m.result()


def occlusion_run(rate_ul_per_h, limit_mmhg, preset="picc", cycle_ms=1000, seed=1,
                  pre_run_s=PRE_RUN_S, max_wait_s=MAX_WAIT_S, release_after_s=RELEASE_AFTER_S,
                  window_s=RELEASE_WINDOW_S):
    """One PT-4 closure: run, clamp, wait for OCCLUSION_DOWN (capped), release, measure.

    Returns a dict: ``alarm_s`` (None if no alarm within ``max_wait_s``), ``alarm_mmhg``
    (the true line pressure then), ``peak_mmhg``, ``release_bolus_ul``, ``release_patient_ul``,
    ``release_run_s``, ``stopped`` (not delivering at the release), ``other_alarms``."""
    p = Pump(preset=preset, seed=seed, cycle_ms=cycle_ms)
    p.program(rate_ul_per_h, occlusion_limit_mmhg=limit_mmhg)
    p.run_s(pre_run_s)
    before = set(p.app.alarms.active)
    w = p.world
    w.clamp(True)
    t_clamp = w.t_ms
    alarm_s = None
    alarm_mmhg = None
    peak = w.downstream_mmhg
    cap_ms = t_clamp + max_wait_s * 1000
    while w.t_ms < cap_ms:
        p.cycle_app()
        if p.alarm(al.OCCLUSION_DOWN):
            alarm_s = (w.t_ms - t_clamp) / 1000.0
            alarm_mmhg = w.downstream_mmhg
            p.advance()
            break
        p.advance()
        if w.downstream_mmhg > peak:
            peak = w.downstream_mmhg
    if alarm_s is not None:
        for _ in range(release_after_s * 1000 // cycle_ms):
            p.step()
            if w.downstream_mmhg > peak:
                peak = w.downstream_mmhg
    release_mmhg = w.downstream_mmhg
    stopped = not p.running
    w.clamp(False)
    excess, patient, run_s = p.measure_release(window_s)
    others = []
    for a in p.app.alarms.active:
        if a != al.OCCLUSION_DOWN and a not in before:
            others.append(al.name(a))
    return {
        "rate_ul_per_h": rate_ul_per_h, "limit_mmhg": limit_mmhg, "preset": preset,
        "cycle_ms": cycle_ms, "alarm_s": alarm_s, "alarm_mmhg": alarm_mmhg,
        "peak_mmhg": peak, "release_mmhg": release_mmhg, "stopped": stopped,
        "release_bolus_ul": excess, "release_patient_ul": patient, "release_run_s": run_s,
        "other_alarms": others, "core_backend": p.app.core.backend,
        "runtime": sys.implementation.name,
    }


def main(argv=None):
    """``-m tests.bench.occlusion_harness RATE_UL_PER_H LIMIT_MMHG PRESET CYCLE_MS``: JSON."""
    argv = sys.argv[1:] if argv is None else argv
    rate = int(argv[0]) if len(argv) > 0 else 1000
    limit = int(argv[1]) if len(argv) > 1 else DEFAULT_OCCLUSION_LIMIT_MMHG
    preset = argv[2] if len(argv) > 2 else "picc"
    cycle_ms = int(argv[3]) if len(argv) > 3 else 1000
    res = occlusion_run(rate, limit, preset, cycle_ms)
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
