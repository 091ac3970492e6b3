"""Device drivers shared by the MicroPython board backends (rp2040, esp32).

Owns the HAL behaviour that is the same on every board: pressure calibration,
encoder and air-detector pin IRQs, key debouncing, buzzer, LEDs, SSD1306 text,
RTC clock with a non-wrapping millisecond counter, watchdog.  Each class is
handed ``machine`` objects (Pin, ADC, PWM, I2C, RTC, WDT) by the board backend
and never imports ``machine`` itself, so the logic is portable and testable
with fakes on the host.

Here: the pressure calibration and the key debouncer, which the sim HAL uses too
(``hal/sim``).  The pin drivers (encoder, air detector, door, buzzer, LEDs, SSD1306,
RTC clock, watchdog, ``pin_parts``) are in ``hal/pin_devices.py``, imported by the board
backends only, so a sim run does not hold their bytecode (~8 KB and ~70 qstrs on the
unix x64 port; PT-8, tests/test_micropython_heap.py).
"""
import time

import hal

try:
    from time import ticks_ms as _ticks_ms, ticks_diff as _ticks_diff, ticks_us as _ticks_us
except ImportError:  # CPython (host tests with fakes)
    def _ticks_ms():
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]

    def _ticks_us():
        return int(time.monotonic() * 1000000)  # type: ignore[attr-defined]

    def _ticks_diff(a, b):  # type: ignore[no-redef]
        return a - b


class AdcPressureSensor(hal.PressureSensor):
    """12-bit ADC code -> mmHg with the board's offset and rational gain."""

    def __init__(self, read_adc, board):
        self.read_adc = read_adc
        self.offset = board.PRESSURE_ADC_OFFSET
        self.num = board.PRESSURE_MMHG_PER_COUNT_NUM
        self.den = board.PRESSURE_MMHG_PER_COUNT_DEN
        self.last_raw = 0

    def read_raw(self):
        self.last_raw = self.read_adc()
        return self.last_raw

    def read_mmhg(self):
        return (self.read_raw() - self.offset) * self.num // self.den


DEBOUNCE_MS = 25         # SR-TH-6: a level counts once stable this long (contacts bounce <= 5 ms)


class DebouncedButtons(hal.Buttons):
    """One press per physical press, however the contacts bounce (SR-TH-6).

    Anchor failure: key bounce turned 4.8 into 44.8 mL/h.  A key is *down* once its
    level has been pressed and stable, and *up* again only once released and stable;
    a press is reported once, on the way down, so bounce on either edge, or a glitch
    while the key is held, never makes a second press.  Stable means: no edge for
    ``DEBOUNCE_MS`` when the pin's IRQ time-stamps edges (``edge``), else the same
    level on two consecutive polls (100 ms apart on the boards).  The IRQ also catches
    a press made and released between two polls: when an edge ends a stable pressed
    level the press is latched for the next poll.  No auto-repeat: a held key is one
    press (a stuck key cannot run a value away).  ``poll`` allocates nothing."""

    def __init__(self, keys, ticks_ms=None, irq=True):
        self.keys = keys                 # [(mask, pin)], pressed = pin low
        self.ticks_ms = ticks_ms if ticks_ms is not None else _ticks_ms
        n = len(keys)
        self.level = [1] * n             # last level seen (IRQ or poll), 1 = released
        self.edge_ms = [None] * n        # time of the last IRQ edge, None before one
        self.seen = [2] * n              # polls in a row that read ``level`` (saturates at 2)
        self.down = 0                    # debounced: keys held down (each reported once)
        self.latched = 0                 # presses the IRQ saw complete between polls
        if irq:
            for i in range(n):
                self._attach(i, keys[i][1])

    def _attach(self, i, pin):
        try:
            pin.irq(handler=lambda p, i=i: self.edge(i, self.ticks_ms()),
                    trigger=pin.IRQ_RISING | pin.IRQ_FALLING)
        except Exception:                # a pin without IRQs: polls alone debounce
            pass

    def edge(self, i, now_ms):
        """A level change on key ``i`` at ``now_ms`` (the pin IRQ, or the sim's contacts)."""
        mask, pin = self.keys[i]
        prev = self.edge_ms[i]
        if prev is None or _ticks_diff(now_ms, prev) >= DEBOUNCE_MS:
            # the level this edge ends was stable: it counts
            if self.level[i] == 0:
                if not self.down & mask:
                    self.down |= mask
                    self.latched |= mask
            else:
                self.down &= ~mask
        self.edge_ms[i] = now_ms
        self.level[i] = pin.value()
        self.seen[i] = 2

    def poll(self):
        now = self.ticks_ms()
        pressed = self.latched
        self.latched = 0
        level = self.level
        seen = self.seen
        edge_ms = self.edge_ms
        i = 0
        for mask, pin in self.keys:
            raw = pin.value()
            if raw != level[i]:
                level[i] = raw           # a change only this poll saw: wait for another
                seen[i] = 1
            else:
                seen[i] = 2
                t = edge_ms[i]
                if t is None or _ticks_diff(now, t) >= DEBOUNCE_MS:
                    if raw == 0:
                        if not self.down & mask:
                            self.down |= mask
                            pressed |= mask
                    else:
                        self.down &= ~mask
            i += 1
        return pressed
