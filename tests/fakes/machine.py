"""Fake of MicroPython's ``machine`` module as the **rp2 port** behaves (device tests).

Owns the rp2 behaviours that differ from CPython and the unix port and have
broken the firmware on a real Pico.  Each class names the port source it mirrors
(MicroPython v1.28/v1.29 tree):

* ``Timer`` -- ``extmod/machine_timer.c`` allocates the timer on the GC heap and
  puts it in the soft-timer pairing heap (``shared/runtime/softtimer.c``); the
  rp2 port's ``gc_collect`` (``ports/rp2/main.c``) does *not* trace that heap
  (only stm32 and renesas-ra call ``soft_timer_gc_mark_all``), so a Timer with no
  Python reference is swept at the next collection and never fires again.  Here
  the registry keeps only a weak reference: an unreferenced Timer stops after
  ``gc.collect()`` (CPython frees it at once by refcount, which is the same
  outcome, only earlier).
* ``I2C`` -- ``ports/rp2/machine_i2c.c``: a transfer nobody acknowledges returns
  ``-MP_EIO`` and the Python call raises ``OSError(5)``; ``present=False`` models
  a missing or dead display.
* ``disable_irq``/``enable_irq`` -- return/take the previous interrupt state.
* ``WDT`` -- ``ports/rp2/machine_wdt.c``: cannot be stopped; timeout <= 8388 ms.

Import it as ``machine`` by putting it in ``sys.modules`` (see ``install()``).
"""
import gc
import sys
import weakref

_live_timers = []          # weak references only: the port's GC does not see them


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0

    def __init__(self, id=-1, mode=PERIODIC, period=-1, callback=None, hard=False, freq=None):
        if id != -1:
            raise ValueError("Timer doesn't exist")      # rp2: only soft timers (-1)
        self.mode = mode
        self.period_ms = period
        self.callback = callback
        self.hard = hard
        self.running = callback is not None
        _live_timers.append(weakref.ref(self))

    def deinit(self):
        self.running = False


def collect():
    """``gc.collect()`` on the rp2 port: unreferenced Timers are swept and stop."""
    gc.collect()
    _live_timers[:] = [ref for ref in _live_timers if ref() is not None]


def fire_timers(n=1):
    """Run each live periodic timer's callback ``n`` times (as its IRQ would)."""
    for _ in range(n):
        for ref in list(_live_timers):
            timer = ref()
            if timer is not None and timer.running:
                timer.callback(timer)


def live_timers():
    return [ref() for ref in _live_timers if ref() is not None and ref().running]


def reset_timers():
    del _live_timers[:]


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 4
    IRQ_FALLING = 8
    levels = {}            # gpio -> input level seen by Pin.value() on inputs

    def __init__(self, gpio, mode=IN, pull=None, value=None):
        self.gpio = gpio
        self.mode = mode
        self.out = 0 if value is None else value
        self.handler = None

    def value(self, v=None):
        if v is None:
            if self.mode == self.OUT:
                return self.out
            return Pin.levels.get(self.gpio, 1)
        self.out = 1 if v else 0

    def irq(self, handler=None, trigger=0, hard=False):
        """As ports/rp2/machine_pin.c machine_pin_get_irq: the handler is kept by the port
        (MP_STATE_PORT(machine_pin_irq_obj[gpio]), a GC root), so a lambda handed over
        needs no other reference; soft (scheduled) unless hard=True."""
        self.handler = handler
        self.hard = hard


class ADC:
    codes = {}             # channel -> 16-bit reading

    def __init__(self, channel):
        self.channel = channel

    def read_u16(self):
        return ADC.codes.get(self.channel, 0x2000)


class PWM:
    def __init__(self, pin):
        self.pin = pin
        self.f = 0
        self.duty = 0

    def freq(self, f):
        self.f = f

    def duty_u16(self, d):
        self.duty = d


class I2C:
    present = True         # False: no device acknowledges (missing/dead display)

    def __init__(self, bus, sda=None, scl=None, freq=400000):
        self.bus = bus
        self.writes = 0

    def _transfer(self):
        if not I2C.present:
            raise OSError(5)                             # -MP_EIO, machine_i2c.c
        self.writes += 1

    def writeto(self, addr, buf, stop=True):
        self._transfer()
        return len(buf)

    def writevto(self, addr, bufs, stop=True):
        self._transfer()
        return sum(len(b) for b in bufs)


class RTC:
    def __init__(self):
        self.dt = (2026, 1, 1, 3, 0, 0, 0, 0)

    def datetime(self, dt=None):
        if dt is None:
            return self.dt
        self.dt = dt


class WDT:
    started = []

    def __init__(self, id=0, timeout=5000):
        if timeout > 8388:
            raise ValueError("timeout exceeds 8388 ms")  # machine_wdt.c
        self.timeout_ms = timeout
        self.feeds = 0
        WDT.started.append(self)

    def feed(self):
        self.feeds += 1


_irq_state = [1]


def disable_irq():
    state = _irq_state[0]
    _irq_state[0] = 0
    return state


def enable_irq(state):
    _irq_state[0] = state


PWRON_RESET = 1
WDT_RESET = 3
reset_cause_value = [PWRON_RESET]


def reset_cause():
    return reset_cause_value[0]


def unique_id():
    return b"\xe6\x61\x38\x83\x0b\x2a\x3c\x21"


def install():
    """Make ``import machine`` (and ``from machine import ...``) get this fake."""
    sys.modules["machine"] = sys.modules[__name__]
    Pin.levels.clear()
    ADC.codes.clear()
    I2C.present = True
    del WDT.started[:]
    reset_timers()
