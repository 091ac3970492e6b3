"""The virtual pump: firmware + sim HAL + physics, served on stdin/stdout.

Owns the real-time loop of a simulated pump that host tools talk to exactly
like a real one: the service port is stdin/stdout (``pumpctl sim`` bridges it
to a pseudo-terminal), the event log lives in real files (``--state-dir``),
and time is paced to the wall clock times ``--speed``.  Portable: runs under
``micropython`` (reference core) or CPython (C core).  Nothing may be printed
on stdout: it is the service link.

    micropython sim/virtual_pump.py [--speed X] [--rate-ml-h R --vtbi-ml V]
                                    [--state-dir D] [--cycle-ms MS] [--preset picc]
                                    [--serial SN]

The pump's buttons are pressed from outside through a file: write key names
(``select``, ``run``, ``bolus``, ``up``, ``down``, ``silence``; one or more, any
separator) to ``<state-dir>/press``; the pump presses them and removes the file
(``pumpctl key provision`` needs SELECT pressed on the pump).
"""
import sys
import time

from firmware.app import PumpApp
from hal.sim import make_sim_hal, PosixStorage, StdioServicePort
from sim.world import World


def _ms_now():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _ms_since(start):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_ms(), start)   # MicroPython ticks wrap
    return _ms_now() - start


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000.0)


def parse_args(argv):
    opts = {"speed": 1.0, "rate-ml-h": None, "vtbi-ml": None, "state-dir": "/tmp/virtual_pump",
            "cycle-ms": 100, "preset": "picc", "seed": 1, "serial": "VP-0001"}
    i = 0
    while i < len(argv):
        key = argv[i]
        if not key.startswith("--") or key[2:] not in opts or i + 1 >= len(argv):
            raise ValueError("bad argument %r; options: %s" %
                             (key, " ".join("--" + k for k in sorted(opts))))
        opts[key[2:]] = argv[i + 1]
        i += 2
    return opts


def ml_to_ul(text):
    """'10' or '10.5' mL -> uL as an int, without float rounding surprises."""
    if "." in text:
        whole, frac = text.split(".", 1)
        frac = (frac + "000")[:3]
        return int(whole or "0") * 1000 + int(frac)
    return int(text) * 1000


KEY_NAMES = (("run", 1), ("select", 2), ("bolus", 4), ("up", 8), ("down", 16),
             ("silence", 32))
PRESS_FILE = "press"


def take_presses(storage):
    """Key mask written to the state directory's press file (removed), 0 if none."""
    if not storage.exists(PRESS_FILE):
        return 0
    try:
        f = storage.open(PRESS_FILE, "rb")
        try:
            text = f.read(200).decode().lower()
        finally:
            f.close()
        storage.remove(PRESS_FILE)
    except (OSError, UnicodeError):
        return 0
    mask = 0
    for name, bit in KEY_NAMES:
        if name in text:
            mask |= bit
    return mask


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    cycle_ms = int(opts["cycle-ms"])
    speed = float(opts["speed"])
    world = World(preset=opts["preset"], seed=int(opts["seed"]))
    port = StdioServicePort()
    storage = PosixStorage(opts["state-dir"])
    hal = make_sim_hal(world, cycle_ms=cycle_ms, service_port=port, storage=storage)
    hal.board.SERIAL = opts["serial"]
    buttons = hal.buttons
    app = PumpApp(hal)
    app.boot()
    if opts["rate-ml-h"] is not None and opts["vtbi-ml"] is not None:
        app.program_continuous(ml_to_ul(opts["rate-ml-h"]), ml_to_ul(opts["vtbi-ml"]))
        app.start()
    sys.stderr.write("virtual pump up: core=%s cycle=%d ms speed=%sx\n" %
                     (app.core.backend, cycle_ms, opts["speed"]))
    start = _ms_now()
    n = 0
    while not port.closed:
        app.cycle()
        world.advance(cycle_ms)
        n += 1
        if n % 5 == 0:
            keys = take_presses(storage)
            if keys:
                buttons.press(keys)
        due = int(n * cycle_ms / speed)
        wait = due - _ms_since(start)
        if wait > 0:
            _sleep_ms(wait)
    return 0


if __name__ == "__main__":
    sys.exit(main())
