"""The device entry point and the RP2040 backend against fakes of the rp2 port (CPython).

``tests/fakes/machine.py`` and ``tests/fakes/rp2.py`` model what the real port does
differently from CPython and the unix port, each naming the port source it
mirrors: an unreferenced ``machine.Timer`` is swept by the collector (issue 5, D1),
an I2C bus with no display raises ``OSError(5)`` (D4), ``sys.stdout.buffer`` has no
flush (D2, see tests/mpy/test_rp2_port_behaviours.py), a full PIO FIFO blocks (D3,
tests/test_pio_step_train.py).
"""
import sys
import types

import pytest

import safety_core as sc
from firmware import alarms as al
from firmware.app import PumpApp
from firmware.dose_driver import TimerDoseDriver
from firmware.selftest import FAIL
from hal.sim import make_sim_hal
from sim.world import World
from tests.fakes import framebuf as fake_framebuf
from tests.fakes import machine as fake_machine
from tests.fakes import rp2 as fake_rp2


class FakeMicropython(types.ModuleType):
    """``micropython`` module: records kbd_intr calls (and when they happened)."""

    def __init__(self, journal):
        types.ModuleType.__init__(self, "micropython")
        self.journal = journal

    def kbd_intr(self, ch):
        self.journal.append(("kbd_intr", ch))

    @staticmethod
    def const(x):
        return x


class PollableStdin:
    buffer = None

    def fileno(self):
        return 0


@pytest.fixture
def rp2_port(monkeypatch):
    """Imports of machine/rp2/framebuf/micropython get the rp2 fakes; hal.rp2040 is fresh."""
    journal = []
    fake_machine.install()
    monkeypatch.setitem(sys.modules, "machine", fake_machine)
    monkeypatch.setitem(sys.modules, "rp2", fake_rp2)
    monkeypatch.setitem(sys.modules, "framebuf", fake_framebuf)
    monkeypatch.setitem(sys.modules, "micropython", FakeMicropython(journal))
    monkeypatch.setattr(sys, "stdin", PollableStdin())
    for name in [n for n in sys.modules if n.startswith("hal.rp2040")]:
        monkeypatch.delitem(sys.modules, name)
    yield journal
    for name in [n for n in sys.modules if n.startswith("hal.rp2040")]:
        del sys.modules[name]
    fake_machine.reset_timers()


def test_fake_timer_models_the_rp2_sweep_of_unreferenced_timers(rp2_port):
    hits = []
    fake_machine.Timer(-1, period=10, callback=lambda t: hits.append(1))   # nobody keeps it
    kept = fake_machine.Timer(-1, period=10, callback=lambda t: hits.append(2))
    fake_machine.collect()
    fake_machine.fire_timers(3)
    assert hits == [2, 2, 2] and fake_machine.live_timers() == [kept]


def test_core_tick_survives_garbage_collection_on_rp2_SR_CORE_7(rp2_port):
    from firmware import main as device_main
    world = World(seed=1)
    h = make_sim_hal(world, cycle_ms=100)
    core = sc.SafetyCore(h.board.USTEP_VOLUME_PL)
    driver = TimerDoseDriver(core, h.stepper, device_main._timer_start,
                             fake_machine.disable_irq, fake_machine.enable_irq)
    app = PumpApp(h, core=core, driver=driver)
    app.boot()
    app.program_continuous(36000, 100000)           # 36 mL/h = 10 uL/s
    app.start()
    fake_machine.collect()                           # the first automatic collection
    assert fake_machine.live_timers() == [driver.timer] and driver.timer.hard
    for _ in range(20):                              # 2 s: cycles every 100 ms, IRQ every 10
        app.cycle()
        fake_machine.fire_timers(10)
        world.advance(100)
        fake_machine.collect()
    assert abs(core.delivered_nl() - 20000) <= 16    # 2 s at 10 uL/s
    assert world.motor_enabled and not app.alarms.active


def test_rp2_make_hal_with_no_display_names_it_and_does_not_raise_SR_AL_4(rp2_port):
    fake_machine.I2C.present = False                 # nothing acknowledges on I2C0
    from hal.rp2040 import make_hal
    h = make_hal()
    assert h.part_failures == [("display", "OSError: 5")]
    assert isinstance(h.stepper, sys.modules["hal.rp2040"].PioStepper)


def test_rp2_boot_with_a_dead_display_is_a_system_error_not_a_repl_SR_SVC_4(rp2_port,
                                                                           monkeypatch):
    import hal.rp2040 as backend
    from firmware import main as device_main
    fake_machine.I2C.present = False
    journal = rp2_port
    seen = {}

    def make_hal():
        seen["kbd_intr before make_hal"] = ("kbd_intr", -1) in journal
        h = backend.make_hal()
        from hal.ram_storage import RamStorage
        h.storage = RamStorage()                     # littlefs is the board's, not the host's
        seen["hal"] = h
        return h

    class Stop(BaseException):       # out of the loop that never ends (like a reset)
        pass

    def run_cycles(app, period_ms, clock_ms, sleep_ms, cycles=-1):
        seen["app"] = app
        raise Stop()

    class Backend:
        board = backend.board
        make_service_port = staticmethod(backend.make_service_port)
    Backend.make_hal = staticmethod(make_hal)
    monkeypatch.setattr(device_main, "_platform_backend", lambda: Backend)
    monkeypatch.setattr(device_main, "run_cycles", run_cycles)
    fake_machine.Pin.levels[backend.board.PIN_KEY_SELECT] = 1          # no key held
    with pytest.raises(Stop):
        device_main.main()
    assert seen["kbd_intr before make_hal"]
    app = seen["app"]
    failed = [r[0] for r in app.post_results if r[1] == FAIL]
    assert failed[0] == "hardware: display"          # named first (fake pins also fail the
    #                                                  air self test; no image on the host)
    assert app.alarms.is_active(al.SELF_TEST_FAILED)
    assert app.hal.stepper.en.value() == 1            # EN is active low: driver off
    with pytest.raises(sc.CoreRefused):
        app.program_continuous(10000, 10000)
        app.start()


def test_maintenance_boot_only_in_a_development_image_with_both_keys_held_SR_SVC_4(rp2_port, monkeypatch):
    import hal.rp2040 as backend
    from firmware import main as device_main
    board = backend.board
    fake_machine.Pin.levels[board.PIN_KEY_SELECT] = 0
    fake_machine.Pin.levels[board.PIN_KEY_SILENCE] = 0
    assert board.MAINTENANCE_BOOT is False                          # production board file
    assert not device_main.maintenance_requested(board, fake_machine.Pin)
    dev_image = types.ModuleType("dev_image")                       # make firmware DEV=1
    dev_image.MAINTENANCE_BOOT = True
    monkeypatch.setitem(sys.modules, "dev_image", dev_image)
    assert device_main.maintenance_requested(board, fake_machine.Pin)
    fake_machine.Pin.levels[board.PIN_KEY_SILENCE] = 1               # one key is not enough
    assert not device_main.maintenance_requested(board, fake_machine.Pin)
