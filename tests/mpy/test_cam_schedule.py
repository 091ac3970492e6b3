"""Flow linearisation under MicroPython (PT-3; SR-CORE-2: never ahead of the core's count).

The same schedule as ``tests/test_cam_schedule.py`` checks on CPython with hypothesis,
here with a portable pseudo-random walk (``sim.prng``), an integer cam (3200 microsteps
a turn, delivery over the first 2400, one mark at the delivery start), and the device
path: the timer-IRQ dose driver with the sim board's cam geometry.
"""
import gc

import safety_core as sc
from firmware.cam_schedule import CamSchedule, for_board
from firmware.dose_driver import TimerDoseDriver
from firmware.app import PumpApp
from hal.sim import make_sim_hal
from sim.prng import XorShift32
from sim.world import World

R = 3200
D = 2400


class Cam:
    def __init__(self, phase):
        self.pos = phase
        self.enc0 = phase // R
        self.back = 0

    def move(self, n):
        p0 = self.pos
        self.pos += n
        if n < 0:
            self.back += p0 // R - self.pos // R

    def count(self):
        return self.pos // R - self.enc0 + 2 * self.back

    def volume(self):
        turns = self.pos // R
        within = self.pos - turns * R
        return turns * D + (within if within < D else D)


def _walk(seed, period_ms, n):
    rng = XorShift32(seed)
    cam = Cam(rng.below(R))
    s = CamSchedule(R, D, R, 8000, period_ms)
    core = 0
    motor = 0
    stopped = False
    for _ in range(n):
        op = rng.below(20)
        c = rng.below(90)
        if op == 0:                         # a stop: the stopping period's steps only
            c = 0 if stopped else c
            s.observe(cam.count())
            core += c
            assert s.next(c, False) == 0    # never moves after a stop
            stopped = True
        elif op == 1:                       # a back-off
            k = rng.below(400)
            cam.move(-k)
            s.reverse(k)
        elif op == 2:
            s.reset()                        # a new program
        else:
            s.observe(cam.count())
            core += c
            m = s.next(c, True)
            motor += m
            cam.move(m)
            stopped = False
        assert 0 <= motor <= core            # SR-CORE-2: never ahead
        assert 0 <= s.owed == core - motor - s.dropped
        if s.locked:
            p = s.phase
            x = p * (R - D) if p <= D else D * (R - p)
            assert s.acc == s.owed * D - x


def test_never_ahead_of_the_core_count_SR_CORE_2():
    for seed in (1, 2, 3, 7, 11):
        _walk(seed, 10, 3000)
        _walk(seed, 1000, 600)


def test_pass_through_then_lock_then_linear_PT_3():
    cam = Cam(1700)
    s = CamSchedule(R, D, R, 8000, 1000)
    core = 0
    v0 = cam.volume()
    base = None
    for i in range(3000):                    # 10 mL/h: 177.8 steps a second
        c = (i + 1) * 1778 // 10 - i * 1778 // 10
        s.observe(cam.count())
        core += c
        locked = s.locked
        m = s.next(c, True)
        if not locked:
            assert m == c                    # unchanged before the phase is known
        cam.move(m)
        err = (cam.volume() - v0) * R - core * D
        if locked:
            if base is None:
                base = err
            assert abs(err - base) <= 3 * 180 * D, (i, err - base)
    assert s.locked and base is not None


def test_whole_turns_exact_PT_3():
    s = CamSchedule(R, D, R, 8000, 10)
    s.observe(0)
    s._lock(0)
    motor = 0
    for i in range(4 * R // 37):
        motor += s.next(37, True)
    left = 4 * R - (4 * R // 37) * 37
    motor += s.next(left, True)
    for _ in range(100):
        motor += s.next(0, True)
    assert motor == 4 * R and s.owed == 0 and s.acc == 0 and s.phase == 0


def test_schedule_call_allocates_nothing_PT_8():
    s = CamSchedule(R, D, R, 8000, 10)
    s.observe(0)
    for _ in range(10):
        s.next(20, True)
    if not hasattr(gc, "mem_alloc"):
        return                               # CPython: nothing to measure
    gc.collect()
    a0 = gc.mem_alloc()
    for i in range(2000):
        s.next(i & 31, True)
        s.observe(i >> 7)
        s.pending()
    assert gc.mem_alloc() - a0 == 0


class _Timer:
    def start(self, period_ms, callback):
        self.callback = callback
        return self

    def fire(self, n):
        for _ in range(n):
            self.callback(self)


def test_timer_driver_linearises_and_never_runs_ahead_PT_3():
    world = World(seed=4)
    hal = make_sim_hal(world, cycle_ms=100)
    core = sc.SafetyCore(hal.board.USTEP_VOLUME_PL)
    timer = _Timer()
    driver = TimerDoseDriver(core, hal.stepper, timer.start, board=hal.board,
                             pulses_per_rev=hal.encoder.pulses_per_rev)
    assert driver.cam is not None and driver.cam.delivery == 2400
    app = PumpApp(hal, core=core, driver=driver)
    app.boot()
    app.program_continuous(rate_ul_per_h=36000, vtbi_ul=1000)
    app.start()
    start = world.steps_total
    lows = []
    for i in range(400):                     # 40 s at 36 mL/h: 8 cam turns
        app.cycle()
        timer.fire(10)
        world.advance(100)
        moved = world.steps_total + world.pending_steps - start
        assert moved <= core.delivered_steps     # SR-CORE-2: never ahead
        assert core.delivered_steps - moved <= (R - D) + 2 * 90
        if driver.cam.locked and i % 10 == 9:
            lows.append(world.pumped_ul)
    assert driver.cam.locked
    per_s = [b - a for a, b in zip(lows, lows[1:])]
    assert per_s and max(per_s) - min(per_s) < 1.5, per_s   # 10 uL/s, no 45 s gaps
    assert not app.alarms.active, app.alarms.active


def test_for_board_without_cam_geometry_is_off():
    class Old:
        USTEPS_PER_REV = 3200

    assert for_board(Old, 1, 10) is None
    assert for_board(None, 1, 10) is None
