"""Firmware behaviours that differ on MicroPython's rp2 port, checked with fakes that
behave like the port (runs under CPython and the MicroPython unix port).

* ``sys.stdout.buffer`` has no ``flush`` on rp2 (``shared/runtime/sys_stdio_mphal.c``):
  a service reply must go out exactly once, with no error frame after it (issue 5, D2).
* The timer that ticks the core must be kept by the driver (issue 5, D1); the weak
  registry that models rp2's untraced soft-timer heap is CPython-only
  (``tests/test_device_rp2.py``); here: ``timer_start``'s result is kept.
* The driver enable line follows delivery (issue 5: idle, paused, faulted, complete
  all release it; channel B can always cut it).
"""
import sys

import safety_core as sc
from firmware import alarms as al
from firmware import eventlog, events
from firmware import protocol as p
from firmware.app import PumpApp
from firmware.dose_driver import TimerDoseDriver
from hal.sim import make_sim_hal
from hal.stdio_port import StdioServicePort
from sim.world import World


class Rp2StdoutBuffer:
    """``sys.stdout.buffer`` on the rp2 port: write, no flush (sys_stdio_mphal.c)."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data.extend(data)
        return len(data)


class _FdStdin:
    """A pollable stdin for CPython under pytest (fd 0); never read in these tests."""
    buffer = None

    def fileno(self):
        return 0


def _rp2_port(out):
    if sys.implementation.name == "micropython":
        port = StdioServicePort(stdout=out)
    else:
        port = StdioServicePort(stdin=_FdStdin(), stdout=out)
    return port


def test_reply_on_rp2_stdout_without_flush_is_one_frame_SR_SVC_1():
    out = Rp2StdoutBuffer()
    port = _rp2_port(out)
    request = [p.encode_frame(7, p.STATUS)]

    def read(max_bytes):
        return request.pop() if request else b""
    port.read = read
    world = World(seed=2)
    app = PumpApp(make_sim_hal(world, service_port=port))
    app.boot()
    seq_before = app.log.last_seq
    app.cycle()
    replies = p.FrameDecoder().feed(bytes(out.data))
    assert len(replies) == 1, replies
    assert replies[0][0] == 7 and replies[0][1] == p.STATUS | p.REPLY
    assert app.last_error is None
    # nothing but the cycle's own events: no ERROR record for a failed request
    for raw in app.log.read(seq_before + 1, 100):
        assert eventlog.decode(raw)[1] != events.ERROR


class KeepingTimer:
    """A periodic timer object as ``machine.Timer`` returns it."""

    def __init__(self, period_ms, callback):
        self.period_ms = period_ms
        self.callback = callback


def _timer_app():
    world = World(seed=4)
    hal = make_sim_hal(world, cycle_ms=100)
    core = sc.SafetyCore(hal.board.USTEP_VOLUME_PL)
    made = []

    def timer_start(period_ms, callback):
        made.append(KeepingTimer(period_ms, callback))
        return made[-1]
    driver = TimerDoseDriver(core, hal.stepper, timer_start)
    app = PumpApp(hal, core=core, driver=driver)
    app.boot()
    return app, world, driver, made


def test_dose_driver_keeps_its_timer_SR_CORE_7():
    app, world, driver, made = _timer_app()
    assert len(made) == 1 and driver.timer is made[0] and made[0].period_ms == 10


def _run(app, world, driver, seconds, app_alive=True):
    for _ in range(seconds * 10):
        if app_alive:
            app.cycle()
        for _ in range(10):
            driver.timer.callback(driver.timer)
        world.advance(100)


def test_enable_line_follows_delivery_SR_CORE_7():
    app, world, driver, made = _timer_app()
    assert not world.motor_enabled                       # idle after boot
    app.program_continuous(36000, 100000)
    _run(app, world, driver, 1)
    assert not world.motor_enabled                       # ready: programmed, not started
    app.start()
    _run(app, world, driver, 1)
    assert world.motor_enabled
    app.pause()
    assert not world.motor_enabled                       # paused
    app.start()
    _run(app, world, driver, 1)
    assert world.motor_enabled
    _run(app, world, driver, 3, app_alive=False)         # application stalls
    assert app.core.faults & sc.FAULT_HEARTBEAT
    assert not world.motor_enabled                       # released in the IRQ itself
    _run(app, world, driver, 1)
    assert app.alarms.is_active(al.CORE_HEARTBEAT) and not world.motor_enabled
    app.acknowledge()
    app.start()
    _run(app, world, driver, 1)
    assert world.motor_enabled


def test_enable_line_released_when_complete_and_cut_by_channel_b():
    app, world, driver, made = _timer_app()
    app.program_continuous(360000, 1000)                 # 1 mL at 360 mL/h: 10 s
    app.start()
    _run(app, world, driver, 12)
    assert app.core.phase == sc.PHASE_COMPLETE and not world.motor_enabled
    app.program_continuous(36000, 100000)
    app.acknowledge()
    app.start()
    _run(app, world, driver, 1)
    assert world.motor_enabled
    app.cut_motor()                                # channel B stops the motor
    assert not world.motor_enabled
    steps = world.steps_total + world.pending_steps
    _run(app, world, driver, 2)
    assert not world.motor_enabled
    assert world.steps_total + world.pending_steps == steps


class _NotWritable:
    """select.poll on a USB CDC stdout whose host stopped reading: no POLLOUT."""

    def poll(self, timeout_ms):
        return []


def test_reply_to_a_host_that_stopped_reading_is_dropped_not_blocking_SR_SVC_1():
    out = Rp2StdoutBuffer()
    port = _rp2_port(out)
    port._out_poll = _NotWritable()          # as the port sees a full CDC TX FIFO
    port._out_ipoll = None
    port.write(b"reply")
    assert port.dropped == 1 and not out.data
    port._out_poll = None                    # writable again
    port.write(b"reply")
    assert bytes(out.data) == b"reply"
