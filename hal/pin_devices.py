"""Pin drivers shared by the MicroPython board backends (rp2040, esp32).

Owns the encoder and air-detector pin IRQs, the door switch, buzzer, LEDs, SSD1306
text, RTC clock with a non-wrapping millisecond counter, watchdog and ``pin_parts``
(the parts every board wires the same way).  Each class is handed
``machine`` objects (Pin, PWM, I2C, RTC, WDT) by the board backend and never imports
``machine`` itself, so the logic is portable and testable with fakes on the host.
Imported by the board backends only; ``hal/devices.py`` holds the pressure calibration
and the key debouncer that the sim HAL uses too: a sim run loads only those.
"""
import time

import hal
from hal.devices import DebouncedButtons, _ticks_diff, _ticks_ms, _ticks_us


class IrqEncoder(hal.Encoder):
    """Counts rising edges of the cam-shaft sensor in a pin IRQ."""

    def __init__(self, pin, pulses_per_rev):
        self.pulses_per_rev = pulses_per_rev
        self.pulses = 0
        pin.irq(handler=self._edge, trigger=pin.IRQ_RISING)

    def _edge(self, pin):
        self.pulses += 1

    def count(self):
        return self.pulses


class EdgeAirSensor(hal.AirSensor):
    """Ultrasonic detector on a pin: air volume = pumped volume while the output was high.

    Both edges are time-stamped in an IRQ; at each ``take_air_nl`` the fraction of
    the elapsed time the output was high is applied to the microsteps issued
    since the previous call (the step generator spreads them evenly)."""

    def __init__(self, out_pin, test_pin, stepper, ustep_volume_pl):
        self.out = out_pin
        self.test = test_pin
        self.stepper = stepper
        self.ustep_volume_pl = ustep_volume_pl
        self.high_us = 0
        self.rise_us = None
        self.last_us = _ticks_us()
        self.last_steps = stepper.steps_issued()
        out_pin.irq(handler=self._edge, trigger=out_pin.IRQ_RISING | out_pin.IRQ_FALLING)

    def _edge(self, pin):
        now = _ticks_us()
        if pin.value():
            self.rise_us = now
        elif self.rise_us is not None:
            self.high_us += _ticks_diff(now, self.rise_us)
            self.rise_us = None

    def air_present(self):
        return self.out.value() == 1

    def take_air_nl(self):
        now = _ticks_us()
        high = self.high_us
        if self.rise_us is not None:             # still in a bubble: count up to now
            high += _ticks_diff(now, self.rise_us)
            self.rise_us = now
        self.high_us = 0
        elapsed = _ticks_diff(now, self.last_us)
        self.last_us = now
        steps = self.stepper.steps_issued()
        moved = steps - self.last_steps
        self.last_steps = steps
        if high <= 0 or elapsed <= 0 or moved <= 0:
            return 0
        if high > elapsed:
            high = elapsed
        return moved * self.ustep_volume_pl * high // elapsed // 1000

    def self_test(self):
        """Drive the test input: the output must follow it both ways."""
        self.test.value(1)
        time.sleep_ms(2) if hasattr(time, "sleep_ms") else time.sleep(0.002)
        seen_air = self.out.value() == 1
        self.test.value(0)
        time.sleep_ms(2) if hasattr(time, "sleep_ms") else time.sleep(0.002)
        return seen_air and self.out.value() == 0


class PinDoor(hal.DoorSensor):
    def __init__(self, latch_pin, cassette_pins):
        self.latch = latch_pin
        self.cassette_pins = cassette_pins

    def closed(self):
        return self.latch.value() == 0

    def cassette_type(self):
        code = 0
        for i, pin in enumerate(self.cassette_pins):
            if pin.value() == 0:
                code |= 1 << i
        return code




class PwmBuzzer(hal.Buzzer):
    def __init__(self, pwm):
        self.pwm = pwm
        self.on = False
        pwm.duty_u16(0)

    def tone(self, freq_hz, volume_pct):
        self.pwm.freq(freq_hz)
        self.pwm.duty_u16(volume_pct * 32767 // 100)
        self.on = True

    def off(self):
        self.pwm.duty_u16(0)
        self.on = False

    def is_on(self):
        return self.on


class PinLeds(hal.Leds):
    def __init__(self, red, amber, green):
        self.pins = (red, amber, green)

    def set(self, red, amber, green):
        self.pins[0].value(1 if red else 0)
        self.pins[1].value(1 if amber else 0)
        self.pins[2].value(1 if green else 0)


class Ssd1306Display(hal.Display):
    """128x64 SSD1306 over I2C, text only (8 lines x 16 characters of 8x8 font)."""

    _INIT = (0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, 63, 0xC8, 0xD3, 0x00, 0xDA, 0x12,
             0xD5, 0x80, 0xD9, 0xF1, 0xDB, 0x30, 0x81, 0xFF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF)

    def __init__(self, i2c, addr):
        import framebuf
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(128 * 64 // 8)
        self.fb = framebuf.FrameBuffer(self.buf, 128, 64, framebuf.MONO_VLSB)
        self.cmd = bytearray(2)
        for c in self._INIT:
            self._command(c)

    def _command(self, c):
        self.cmd[0] = 0x80
        self.cmd[1] = c
        self.i2c.writeto(self.addr, self.cmd)

    def show(self, lines):
        self.fb.fill(0)
        for i, line in enumerate(lines[:8]):
            self.fb.text(line, 0, i * 8, 1)
        for c in (0x21, 0, 127, 0x22, 0, 7):
            self._command(c)
        self.i2c.writevto(self.addr, (b"\x40", self.buf))


class RtcClock(hal.Clock):
    """Monotonic ms that never wraps (ticks_ms wraps after ~12 days) and the RTC."""

    def __init__(self, rtc):
        self.rtc = rtc
        self.last_raw = _ticks_ms()
        self.ms = 0

    def ticks_ms(self):
        raw = _ticks_ms()
        self.ms += _ticks_diff(raw, self.last_raw)
        self.last_raw = raw
        return self.ms

    def rtc_s(self):
        return int(time.time())

    def set_rtc_s(self, seconds):
        t = time.gmtime(seconds)
        self.rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def sleep_ms(self, ms):
        time.sleep_ms(ms)


class WdtWatchdog(hal.Watchdog):
    """machine.WDT: cannot be stopped once started."""

    def __init__(self, wdt_class):
        self.wdt_class = wdt_class
        self.wdt = None

    def start(self, timeout_ms):
        if self.wdt is None:
            self.wdt = self.wdt_class(timeout=timeout_ms)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()


KEY_PIN_NAMES = (("KEY_RUN_STOP", "PIN_KEY_RUN_STOP"), ("KEY_SELECT", "PIN_KEY_SELECT"),
                 ("KEY_BOLUS", "PIN_KEY_BOLUS"), ("KEY_UP", "PIN_KEY_UP"),
                 ("KEY_DOWN", "PIN_KEY_DOWN"), ("KEY_SILENCE", "PIN_KEY_SILENCE"))


def pin_parts(board, Pin, stepper, cassette_pins):
    """The parts every board wires the same way, on plain GPIO pins, as Hal keywords."""
    keys = [(getattr(hal, key), Pin(getattr(board, pin), Pin.IN, Pin.PULL_UP))
            for key, pin in KEY_PIN_NAMES]
    return {
        "encoder": IrqEncoder(Pin(board.PIN_ENCODER, Pin.IN), board.ENCODER_PULSES_PER_REV),
        "air": EdgeAirSensor(Pin(board.PIN_AIR_OUT, Pin.IN),
                             Pin(board.PIN_AIR_TEST, Pin.OUT, value=0), stepper,
                             board.USTEP_VOLUME_PL),
        "door": PinDoor(Pin(board.PIN_DOOR, Pin.IN, Pin.PULL_UP),
                        tuple(Pin(getattr(board, name), Pin.IN, Pin.PULL_UP)
                              for name in cassette_pins)),
        "buttons": DebouncedButtons(keys),
        "leds": PinLeds(Pin(board.PIN_LED_RED, Pin.OUT), Pin(board.PIN_LED_AMBER, Pin.OUT),
                        Pin(board.PIN_LED_GREEN, Pin.OUT)),
    }
