"""Dose drivers: the device's timer-IRQ tick keeps the core's heartbeat stop meaningful.

A fake periodic timer stands in for ``machine.Timer``; the application cycle runs
every 100 ms as on the board.  When the application stalls, the IRQ keeps ticking
the core with a stale heartbeat and the motor stops after 1 s (SR-CORE-7).
"""
import safety_core as sc
from firmware import alarms as al
from firmware.app import PumpApp
from firmware.dose_driver import TimerDoseDriver
from hal.sim import make_sim_hal
from sim.world import World


class FakeTimer:
    def __init__(self):
        self.callback = None
        self.period_ms = None

    def start(self, period_ms, callback):
        self.period_ms = period_ms
        self.callback = callback
        return self            # machine.Timer(...) returns the timer object

    def fire(self, n):
        for _ in range(n):
            self.callback(self)


class CountingLock:
    def __init__(self):
        self.depth = 0
        self.used = 0

    def lock(self):
        self.depth += 1
        self.used += 1
        return self.depth

    def unlock(self, state):
        assert state == self.depth
        self.depth -= 1


def make(cycle_ms=100):
    world = World(seed=4)
    hal = make_sim_hal(world, cycle_ms=cycle_ms)
    core = sc.SafetyCore(hal.board.USTEP_VOLUME_PL)
    timer = FakeTimer()
    lock = CountingLock()
    driver = TimerDoseDriver(core, hal.stepper, timer.start, lock.lock, lock.unlock)
    app = PumpApp(hal, core=core, driver=driver)
    app.boot()
    return app, world, timer, lock


def run(app, world, timer, seconds, app_alive=True):
    for _ in range(seconds * 10):        # 100 ms application cycles
        if app_alive:
            app.cycle()
        timer.fire(10)                   # the IRQ ticks regardless
        world.advance(100)


def test_timer_ticks_deliver_the_programmed_rate():
    app, world, timer, lock = make()
    assert timer.period_ms == 10
    app.program_continuous(36000, 100000)          # 36 mL/h = 10 uL/s
    app.start()
    run(app, world, timer, 60)
    assert abs(app.core.delivered_nl() - 600000) <= 16
    assert abs(world.pumped_ul - 600.0) <= 13.0     # one partial cam stroke
    assert lock.used >= 3 and lock.depth == 0       # program/start ran with IRQs masked


def test_stalled_application_stops_the_motor_within_1s_SR_CORE_7():
    app, world, timer, lock = make()
    app.program_continuous(36000, 100000)
    app.start()
    run(app, world, timer, 5)
    steps_before = world.steps_total + world.pending_steps
    run(app, world, timer, 3, app_alive=False)       # the application hangs
    assert app.core.faults & sc.FAULT_HEARTBEAT
    moved = world.steps_total + world.pending_steps - steps_before
    assert moved <= 2304 * 11 // 10                  # at most ~1.1 s of steps at 36 mL/h
    run(app, world, timer, 2, app_alive=True)        # it comes back: the stop stays latched
    assert app.core.phase == sc.PHASE_PAUSED
    assert app.alarms.is_active(al.CORE_HEARTBEAT)
    app.acknowledge()                                # the nurse acknowledges: cause is gone
    assert not app.alarms.is_active(al.CORE_HEARTBEAT) and app.core.faults == 0
    app.start()
    before = app.core.delivered_nl()
    run(app, world, timer, 10)
    assert abs(app.core.delivered_nl() - before - 100000) <= 16


def test_air_and_pressure_reach_the_irq_ticks():
    app, world, timer, lock = make()
    app.program_continuous(36000, 100000, bubble_limit_ul=100)
    app.start()
    run(app, world, timer, 2)
    world.inject_bubble(150)
    run(app, world, timer, 30)
    assert app.core.faults & sc.FAULT_AIR_BUBBLE
