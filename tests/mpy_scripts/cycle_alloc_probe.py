"""Bytes allocated per application cycle (PT-8), per configuration, printed as JSON.

One application cycle is ``PumpApp.cycle()`` (every 100 ms on the board).  Each
cycle is measured on its own: ``gc.mem_alloc()`` before and after with the
collector disabled (the collector runs between cycles), so the figure is what
the cycle leaves on the heap as garbage or live data.  Cycles that refresh the
display (every 10th) are reported apart (``display_b``); ``cycle_b`` is the
worst of the other cycles and ``amortised_b`` the mean over all of them.

Sensors: the sim's physics computes the sensor readings in floats (noise,
battery curve), which allocate on MicroPython; a board's ADC read is a C call
returning a small int.  So that the figures are the firmware's own, the
pressure ADC and battery voltage the firmware reads are sampled from the world
between cycles (``Sampled``) and handed over as plain ints; the same cycle on
the unmodified sim HAL is reported as ``running_sim_hal``.  World physics
(``world.advance``) runs outside the measured window.

Sizes are those of the port that runs this: on the 64-bit unix port a GC block
is 32 B and objects are about twice the size of the RP2040's (16 B blocks).

Not measured here (board code, read from the source; each needs a board to measure):
* ``hal/stdio_port.py``: ``select.poll().poll(0)`` returns a new list on every call,
  even empty: one allocation every cycle on the board (64 B on x64; ``ipoll(0)``
  allocates nothing once its first call has made its result tuple);
* ``hal/devices.py`` ``Ssd1306Display.show``: a slice, an ``enumerate`` and a tuple
  per refresh; ``RtcClock.ticks_ms`` is a heap int after 2**30 ms (12.4 days of
  uptime), and so is everything computed from it;
* ``safety_core`` ``delivered_nl()``/``kvo_nl()``: steps * 15625 pL is above 2**30
  after 1.07 mL, so on a 32-bit port each call (display refresh, STATUS, events)
  makes heap ints.

Usage: ``micropython tests/mpy_scripts/cycle_alloc_probe.py [cycles]``.
"""
import gc
import json
import sys

from firmware import protocol as p
from firmware.app import PumpApp
from hal.sim import make_sim_hal
from sim.world import World

CYCLE_MS = 100          # the board's application cycle


class Sampled:
    """Sensor values sampled from the sim between cycles, read back as small ints."""

    def __init__(self, world):
        self.world = world
        self.adc_down = 0
        self.mv = 0
        self.sample()

    def sample(self):
        self.adc_down = self.world.pressure_adc_down()
        self.mv = self.world.battery_mv

    def read_adc(self):
        return self.adc_down

    def voltage_mv(self):
        return self.mv

    def charging(self):
        return False


def make(sampled=True):
    world = World(seed=1)
    hal = make_sim_hal(world, cycle_ms=CYCLE_MS)
    src = None
    if sampled:
        src = Sampled(world)
        hal.pressure_down.read_adc = src.read_adc
        hal.battery = src
    app = PumpApp(hal)
    app.boot()
    return world, hal, app, src


def step(world, app, src):
    app.cycle()
    world.advance(CYCLE_MS)
    if src is not None:
        src.sample()


def measure(world, hal, app, src, n, frame=None):
    """Per-cycle allocation over n cycles -> dict of figures (bytes)."""
    port = hal.service_port
    alloc = gc.mem_alloc
    worst = 0
    total = 0
    disp_total = 0
    disp_n = 0
    for _ in range(n):
        if frame is not None:
            port.feed(frame)
        gc.collect()
        gc.disable()
        a0 = alloc()
        app.cycle()
        used = alloc() - a0
        gc.enable()
        total += used
        if app.cycles % 10 == 0:
            disp_total += used
            disp_n += 1
        elif used > worst:
            worst = used
        if frame is not None:
            port.drain()
        world.advance(CYCLE_MS)
        if src is not None:
            src.sample()
    return {"cycle_b": worst, "display_b": disp_total // disp_n if disp_n else 0,
            "amortised_b": total // n}


def main(n):
    out = {}
    status_frame = p.encode_frame(7, p.STATUS)

    world, hal, app, src = make()
    for _ in range(30):
        step(world, app, src)
    out["idle"] = measure(world, hal, app, src, n)

    app.program_continuous(10000, 100000)      # 10 mL/h
    app.start()
    for _ in range(30):
        step(world, app, src)
    out["running"] = measure(world, hal, app, src, n)
    out["running_status_every_cycle"] = measure(world, hal, app, src, n, status_frame)

    world.battery.soc = 0.05                   # BATTERY LOW: medium alarm, delivery goes on
    src.sample()
    for _ in range(30):
        step(world, app, src)
    assert app.alarms.top() == 8, app.alarms.active
    out["running_alarm_medium"] = measure(world, hal, app, src, n)

    world.open_door()                          # DOOR OPEN: high alarm, delivery paused
    for _ in range(30):
        step(world, app, src)
    assert app.alarms.top() == 6, app.alarms.active
    out["paused_alarm_high"] = measure(world, hal, app, src, n)

    world, hal, app, src = make(sampled=False)
    app.program_continuous(10000, 100000)
    app.start()
    for _ in range(30):
        step(world, app, src)
    out["running_sim_hal"] = measure(world, hal, app, src, n)
    out["word_bytes"] = 8 if sys.maxsize > 2 ** 32 else 4
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
