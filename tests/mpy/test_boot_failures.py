"""Boot never ends in a REPL or an exception (SR-SVC-4, SR-AL-4): a HAL that cannot be
built, a part that does not answer (rp2 I2C raises OSError 5 for a missing display),
a boot that raises and a cycle that raises all become a HIGH system error with the
motor cut, delivery blocked, the event logged and the service port answering.
POST items either test what they claim or say they cannot (issue 5).
Portable: runs under CPython and the MicroPython unix port.
"""
import sys

import safety_core as sc
from firmware import alarms as al
from firmware import main as device_main
from firmware import protocol as p
from firmware import eventlog, events
from firmware.app import PumpApp
from firmware.selftest import FAIL, NOT_TESTABLE, PASS
from hal import inert, pin_devices
from hal import sim as simhal
from hal.sim import QueueServicePort, make_sim_hal
from sim.world import World


class NoTimer:
    """timer_start stand-in: a timer the test ticks by hand."""

    def __init__(self, period_ms, callback):
        self.callback = callback
        self.stopped = False

    def deinit(self):
        self.stopped = True


def _no_lock():
    return 0


def _no_unlock(state):
    pass


def _board():
    return make_sim_hal(World(seed=1), cycle_ms=100).board


def _start(make_hal, make_port):
    return device_main.start_pump(_board(), make_hal, make_port, NoTimer, _no_lock, _no_unlock)


def _status_over(port, app):
    port.feed(p.encode_frame(9, p.STATUS))
    app.cycle()
    replies = p.FrameDecoder().feed(port.drain())
    assert replies and replies[0][1] == p.STATUS | p.REPLY, replies
    return p.decode_status(replies[0][2])


def _logged(app, etype):
    return [r for r in (eventlog.decode(raw) for raw in app.log.read(1, 1000)) if r[1] == etype]


def _assert_system_error(app, alarm_id):
    assert not app.post_ok
    assert app.alarms.is_active(alarm_id)
    assert al.priority(alarm_id) == al.PRIORITY_HIGH
    assert not app.hal.stepper.steps_issued()
    app.program_continuous(10000, 100000)
    try:
        app.start()
        assert False, "delivery must stay blocked"
    except sc.CoreRefused as e:
        assert "blocked" in str(e) or "alarm" in str(e)


def test_make_hal_raising_gives_system_error_with_port_answering_SR_SVC_4():
    port = QueueServicePort()

    def make_hal():
        raise RuntimeError("GPIO 2 already claimed")
    app = _start(make_hal, lambda: port)
    assert ("hardware: hal", FAIL, "RuntimeError: GPIO 2 already claimed") in app.post_results
    _assert_system_error(app, al.SELF_TEST_FAILED)
    assert _logged(app, events.SELF_TEST_FAILED)
    st = _status_over(port, app)
    assert st["alarm"] == al.SELF_TEST_FAILED


def _sim_factories(world, port, display_factory):
    h = make_sim_hal(world, cycle_ms=100, service_port=port)
    factories = {
        "stepper": lambda: h.stepper, "pressure_down": lambda: h.pressure_down,
        "pressure_up": lambda: h.pressure_up, "battery": lambda: h.battery,
        "buzzer": lambda: h.buzzer, "display": display_factory,
        "storage": lambda: h.storage, "clock": lambda: h.clock,
        "watchdog": lambda: h.watchdog, "service_port": lambda: h.service_port,
    }

    def pin_parts(stepper):
        return {"encoder": h.encoder, "air": h.air, "door": h.door, "buttons": h.buttons,
                "leds": h.leds}
    return h.board, factories, pin_parts


try:
    import framebuf  # noqa: F401  (the unix and rp2 ports have it)
except ImportError:  # CPython
    from tests.fakes import framebuf as _fake_framebuf
    sys.modules["framebuf"] = _fake_framebuf


class Rp2I2cWithoutDevice:
    """machine.I2C on rp2 when nothing acknowledges: OSError(5) (ports/rp2/machine_i2c.c)."""

    def writeto(self, addr, buf, stop=True):
        raise OSError(5)

    def writevto(self, addr, bufs, stop=True):
        raise OSError(5)


def test_missing_display_is_a_named_self_test_failure_not_an_exception_SR_AL_4():
    world = World(seed=2)
    port = QueueServicePort()
    board, factories, pin_parts = _sim_factories(
        world, port, lambda: pin_devices.Ssd1306Display(Rp2I2cWithoutDevice(), 0x3C))
    h = inert.guarded_hal(board, factories, pin_parts)
    assert [f[0] for f in h.part_failures] == ["display"]
    assert "OSError" in h.part_failures[0][1]
    app = device_main.start_pump(board, lambda: h, lambda: port, NoTimer, _no_lock, _no_unlock)
    failed = [r for r in app.post_results if r[1] == FAIL]
    assert [r[0] for r in failed] == ["hardware: display"], app.post_results
    _assert_system_error(app, al.SELF_TEST_FAILED)
    assert _status_over(port, app)["alarm"] == al.SELF_TEST_FAILED


class BrokenFlash(simhal.RamStorage):
    """littlefs that cannot be read (corrupt or unmounted)."""

    def open(self, name, mode="rb"):
        raise OSError(5)

    def exists(self, name):
        raise OSError(5)


def test_boot_raising_falls_back_to_a_ram_log_and_system_error_SR_AL_4():
    world = World(seed=3)
    port = QueueServicePort()
    h = make_sim_hal(world, cycle_ms=100, service_port=port, storage=BrokenFlash())
    app = _start(lambda: h, lambda: port)
    names = [r[0] for r in app.post_results if r[1] == FAIL]
    assert "hardware: hal" in names, app.post_results
    _assert_system_error(app, al.SELF_TEST_FAILED)
    assert _logged(app, events.POWER_ON)          # the RAM log works
    assert _status_over(port, app)["phase"] == sc.PHASE_READY


class ExplodingDisplay:
    def show(self, lines):
        pass


def test_exception_in_a_cycle_cuts_the_motor_and_keeps_serving_SR_SVC_1():
    world = World(seed=4)
    port = QueueServicePort()
    h = make_sim_hal(world, cycle_ms=100, service_port=port)
    app = _start(lambda: h, lambda: port)
    assert app.post_ok, app.post_results
    app.program_continuous(36000, 100000)
    app.start()
    timer = app.driver.timer
    for _ in range(10):
        app.cycle()
        for _ in range(10):
            timer.callback(timer)
        world.advance(100)
    assert world.motor_enabled

    def broken_poll():
        raise ValueError("bad sample")
    h.buttons.poll = broken_poll
    clock = [0]

    def clock_ms():
        return clock[0]

    def sleep_ms(ms):
        clock[0] += ms
    device_main.run_cycles(app, 100, clock_ms, sleep_ms, cycles=3)
    assert app.alarms.is_active(al.SYSTEM_ERROR)
    assert not world.motor_enabled and app.core.phase == sc.PHASE_PAUSED
    assert len(_logged(app, events.ERROR)) == 1                # logged once, not per cycle
    port.feed(p.encode_frame(5, p.STATUS))
    device_main.run_cycles(app, 100, clock_ms, sleep_ms, cycles=1)
    replies = p.FrameDecoder().feed(port.drain())
    assert replies[-1][0] == 5 and replies[-1][1] == p.STATUS | p.REPLY
    try:
        app.start()
        assert False, "a system error blocks delivery until restart"
    except sc.CoreRefused:
        pass


def test_post_items_say_not_testable_instead_of_passed_SR_AL_4():
    world = World(seed=5)
    h = make_sim_hal(world, cycle_ms=100)
    pins = [0, 0, 0]

    class Pin:
        def __init__(self, i):
            self.i = i

        def value(self, v=None):
            pins[self.i] = v
    h.leds = pin_devices.PinLeds(Pin(0), Pin(1), Pin(2))        # GPIO only: no current sense
    app = PumpApp(h)
    assert app.boot()
    by_name = {}
    for r in app.post_results:
        by_name[r[0]] = r
    assert by_name["leds"][1] == NOT_TESTABLE
    assert by_name["watchdog"][1] == NOT_TESTABLE       # a bite needs a reset to prove
    assert by_name["buzzer"][1] == PASS                 # the sim models current sense
    assert by_name["air sensor"][1] == PASS
    assert by_name["firmware image"][1] == NOT_TESTABLE  # running from source
    for r in app.post_results:
        assert r[1] in (PASS, FAIL, NOT_TESTABLE)
        if r[1] == PASS:
            assert "passed" not in r[2]


def test_dead_buzzer_or_led_fails_the_self_test_SR_AL_4():
    for part in ("buzzer", "leds"):
        world = World(seed=6)
        h = make_sim_hal(world, cycle_ms=100)
        getattr(h, part).broken = True
        app = PumpApp(h)
        assert not app.boot()
        assert [r[0] for r in app.post_results if r[1] == FAIL] == [part]
        assert app.alarms.is_active(al.SELF_TEST_FAILED)


def test_timer_driver_refuses_a_timer_it_cannot_keep_SR_CORE_7():
    from firmware.dose_driver import TimerDoseDriver
    h = make_sim_hal(World(seed=7), cycle_ms=100)
    core = sc.SafetyCore(h.board.USTEP_VOLUME_PL)
    try:
        TimerDoseDriver(core, h.stepper, lambda period_ms, cb: None)
        assert False, "a driver without its timer object would stop at the first collection"
    except ValueError as e:
        assert "keeps it" in str(e)


class FailLaterFlash(simhal.RamStorage):
    """Flash that starts failing writes (full, or worn out) after boot."""
    fail = False

    def open(self, name, mode="rb"):
        if self.fail and ("a" in mode or "+" in mode or "w" in mode):
            raise OSError(28)
        return simhal.RamStorage.open(self, name, mode)


def _clock():
    clock = [0]

    def clock_ms():
        return clock[0]

    def sleep_ms(ms):
        clock[0] += ms
    return clock_ms, sleep_ms


def test_failing_log_while_handling_a_cycle_error_stays_in_the_loop_SR_SVC_4():
    world = World(seed=8)
    port = QueueServicePort()
    flash = FailLaterFlash()
    h = make_sim_hal(world, cycle_ms=100, service_port=port, storage=flash)
    app = _start(lambda: h, lambda: port)
    app.program_continuous(36000, 100000)
    app.start()
    timer = app.driver.timer
    for _ in range(5):
        app.cycle()
        for _ in range(10):
            timer.callback(timer)
        world.advance(100)
    assert world.motor_enabled
    flash.fail = True

    def broken_poll():
        raise ValueError("bad sample")
    h.buttons.poll = broken_poll
    clock_ms, sleep_ms = _clock()
    device_main.run_cycles(app, 100, clock_ms, sleep_ms, cycles=3)   # must not raise
    assert not world.motor_enabled and app.core.phase == sc.PHASE_PAUSED
    assert app.alarms.is_active(al.SYSTEM_ERROR)
    port.feed(p.encode_frame(6, p.STATUS))
    device_main.run_cycles(app, 100, clock_ms, sleep_ms, cycles=1)
    replies = p.FrameDecoder().feed(port.drain())
    assert replies and replies[-1][0] == 6 and replies[-1][1] == p.STATUS | p.REPLY


class BrokenRtc:
    def ticks_ms(self):
        return 0

    def rtc_s(self):
        raise OSError(5)

    def set_rtc_s(self, s):
        raise OSError(5)

    def sleep_ms(self, ms):
        pass


def test_a_clock_that_fails_at_boot_still_gives_a_pump_in_system_error_SR_AL_4():
    world = World(seed=9)
    port = QueueServicePort()
    h = make_sim_hal(world, cycle_ms=100, service_port=port)
    h.clock = BrokenRtc()
    app = _start(lambda: h, lambda: port)                 # never raises
    assert not app.post_ok and app.alarms.is_active(al.SELF_TEST_FAILED)
    assert [r for r in app.post_results if r[0] == "hardware: hal" and r[1] == FAIL]
    assert _status_over(port, app)["alarm"] == al.SELF_TEST_FAILED


def test_an_unreadable_image_manifest_is_a_failed_item_not_an_exception_SR_AL_4():
    world = World(seed=10)
    port = QueueServicePort()
    h = make_sim_hal(world, cycle_ms=100, service_port=port)
    h.board.IMAGE_ROOT = "/"                              # the "manifest" is unreadable here
    import firmware.image_check as ic
    saved = ic.MANIFEST
    ic.MANIFEST = "."                                     # opening a directory: OSError
    try:
        app = _start(lambda: h, lambda: port)
    finally:
        ic.MANIFEST = saved
    item = [r for r in app.post_results if r[0] == "firmware image"][0]
    assert item[1] == FAIL, item
    assert app.alarms.is_active(al.SELF_TEST_FAILED)


class EnableFails:
    """A stepper whose enable line driver raises (I2C/GPIO expander fault)."""

    def __init__(self, stepper):
        self.stepper = stepper
        self.fail = False

    def enable(self, on):
        if self.fail:
            raise OSError(5)
        self.stepper.enable(on)

    def move(self, steps, period_ms):
        self.stepper.move(steps, period_ms)

    def steps_issued(self):
        return self.stepper.steps_issued()

    def overruns(self):
        return 0


def test_cut_motor_pauses_the_core_even_when_the_enable_line_fails_SR_CORE_7():
    world = World(seed=11)
    h = make_sim_hal(world, cycle_ms=100)
    h.stepper = EnableFails(h.stepper)
    app = PumpApp(h)
    app.boot()
    app.program_continuous(36000, 100000)
    app.start()
    app.cycle()
    h.stepper.fail = True
    try:
        app.system_error("test")
    except OSError:
        pass
    assert app.core.phase == sc.PHASE_PAUSED
    assert app.alarms.is_active(al.SYSTEM_ERROR)


class OverrunStepper(EnableFails):
    refused = 0

    def overruns(self):
        return self.refused


def test_step_generator_refusal_is_a_motor_drive_system_error_SR_CORE_6():
    world = World(seed=12)
    h = make_sim_hal(world, cycle_ms=100)
    h.stepper = OverrunStepper(h.stepper)
    app = PumpApp(h)
    app.boot()
    app.program_continuous(36000, 100000)
    app.start()
    app.cycle()
    assert world.motor_enabled and not app.alarms.active
    h.stepper.refused = 1
    app.cycle()
    assert app.alarms.is_active(al.MOTOR_DRIVE)
    assert not world.motor_enabled and app.core.phase == sc.PHASE_PAUSED
    try:
        app.start()
        assert False, "a motor-drive error blocks delivery until restart"
    except sc.CoreRefused:
        pass


def test_channel_b_cut_holds_even_while_the_core_runs_SR_CORE_7():
    from firmware.dose_driver import TimerDoseDriver
    world = World(seed=13)
    h = make_sim_hal(world, cycle_ms=100)
    core = sc.SafetyCore(h.board.USTEP_VOLUME_PL)
    made = []

    def timer_start(period_ms, callback):
        made.append(NoTimer(period_ms, callback))
        return made[0]
    driver = TimerDoseDriver(core, h.stepper, timer_start)
    app = PumpApp(h, core=core, driver=driver)
    app.boot()
    app.program_continuous(36000, 100000)
    app.start()
    for _ in range(10):
        driver.timer.callback(driver.timer)
    assert world.motor_enabled
    driver.cut_motor()                      # channel B alone: the core still says RUNNING
    for _ in range(20):
        app.cycle()
        driver.timer.callback(driver.timer)
    assert core.phase == sc.PHASE_RUNNING and not world.motor_enabled
