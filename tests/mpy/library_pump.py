"""A virtual pump with the test drug library active, for the portable programming and menu
tests (CPython and MicroPython).  The library is tests/fixtures/library_small.bin (see
tests/fixtures/library_small.json for its content), verified with the test fleet key.
"""
import binascii

import hal
from firmware import druglib as dl
from firmware import eventlog
from firmware.app import PumpApp
from hal.sim import make_sim_hal
from sim.world import World

_HERE = __file__.replace("\\", "/").rsplit("/", 1)[0] if "/" in __file__ else "."
FIXTURES = _HERE + "/../fixtures/"
MODEL = "AMB-PUMP-1"


def open_library():
    with open(FIXTURES + "library_test.key", "rb") as f:
        key = binascii.unhexlify(f.read().strip())
    f = open(FIXTURES + "library_small.bin", "rb")     # the Library keeps reading it
    return dl.open_verified(f, key, MODEL)


def make_pump(with_library=True, cycle_ms=1000):
    world = World(preset="picc", seed=3)
    h = make_sim_hal(world, cycle_ms=cycle_ms)
    app = PumpApp(h)
    assert app.boot(), app.post_results
    if with_library:
        app.set_library(open_library())
    app.hal.buttons.press(UP | DOWN)     # clinician access (the patient's keys cannot program)
    app.cycle()
    return app, world, h


def run_for(app, world, seconds):
    for _ in range(seconds * 1000 // app.cycle_ms):
        app.cycle()
        world.advance(app.cycle_ms)


def press(app, world, keys, times=1):
    """Press keys on the sim buttons, one application cycle per press; the screen after."""
    for _ in range(times):
        app.hal.buttons.press(keys)
        app.cycle()
        world.advance(app.cycle_ms)
    return app.hal.display.lines


def events(app):
    """[(type, a, b)] of every record in the log."""
    return [eventlog.decode(r)[1:2] + eventlog.decode(r)[4:6] for r in app.log.read(1, 10000)]


UP = hal.KEY_UP
DOWN = hal.KEY_DOWN
SELECT = hal.KEY_SELECT
RUN = hal.KEY_RUN_STOP
BACK = hal.KEY_SILENCE
