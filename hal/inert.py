"""Inert stand-ins for HAL parts that could not be built (device image, portable).

Owns what the pump uses in place of a part whose driver raised while the board
backend built it (``hal.build_part``), and the whole-HAL fallback when
``make_hal`` itself fails.  Every stand-in is *safe*, never optimistic: the motor
never moves, sensors read as faulty (ADC stuck at 0, door open, air present,
battery 0 mV), keys never press, so the power-on self test fails, a HIGH system
error is raised and delivery stays blocked, while the event log (in RAM if the
flash is gone) and the service port keep working where they can.
It must never pretend a part works.
"""
import time

import hal
from hal.ram_storage import RamStorage


class InertStepper(hal.Stepper):
    def enable(self, on):
        pass

    def move(self, steps, period_ms):
        pass

    def steps_issued(self):
        return 0


class InertEncoder(hal.Encoder):
    def count(self):
        return 0


class InertPressureSensor(hal.PressureSensor):
    def read_raw(self):
        return 0            # ADC stuck low: the self test names it

    def read_mmhg(self):
        return 0


class InertAirSensor(hal.AirSensor):
    def air_present(self):
        return True

    def take_air_nl(self):
        return 0

    def self_test(self):
        return False


class InertDoor(hal.DoorSensor):
    def closed(self):
        return False

    def cassette_type(self):
        return 0


class InertBattery(hal.Battery):
    def voltage_mv(self):
        return 0

    def charging(self):
        return False


class InertButtons(hal.Buttons):
    def poll(self):
        return 0


class InertBuzzer(hal.Buzzer):
    def tone(self, freq_hz, volume_pct):
        pass

    def off(self):
        pass

    def is_on(self):
        return False

    def self_test(self):
        return False


class InertLeds(hal.Leds):
    def set(self, red, amber, green):
        pass

    def self_test(self):
        return False


class InertDisplay(hal.Display):
    def show(self, lines):
        pass


class InertClock(hal.Clock):
    """Monotonic ms from ``time`` (the RTC is the board's, or 0 if time has none)."""

    def __init__(self):
        self.offset_s = 0

    def ticks_ms(self):
        if hasattr(time, "ticks_ms"):
            return time.ticks_ms()
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]

    def rtc_s(self):
        return int(time.time()) + self.offset_s

    def set_rtc_s(self, seconds):
        self.offset_s = seconds - int(time.time())

    def sleep_ms(self, ms):
        if hasattr(time, "sleep_ms"):
            time.sleep_ms(ms)
        else:
            time.sleep(ms / 1000.0)


class InertWatchdog(hal.Watchdog):
    def start(self, timeout_ms):
        pass

    def feed(self):
        pass

    def self_test(self):
        return False


class InertServicePort(hal.ServicePort):
    def read(self, max_bytes):
        return b""

    def write(self, data):
        pass


# part name (a Hal keyword) -> stand-in class, for the parts each board builds itself
FALLBACKS = {
    "stepper": InertStepper, "pressure_down": InertPressureSensor,
    "pressure_up": InertPressureSensor, "battery": InertBattery, "buzzer": InertBuzzer,
    "display": InertDisplay, "storage": RamStorage, "clock": InertClock,
    "watchdog": InertWatchdog, "service_port": InertServicePort,
}


def guarded_hal(board, factories, pin_parts_factory):
    """A Hal whose every part is built through ``hal.build_part``.

    ``factories`` maps each name of ``FALLBACKS`` to a function building the real
    part; ``pin_parts_factory(stepper)`` builds the GPIO parts (``hal.pin_devices.pin_parts``).
    A part that raises is replaced by its stand-in and named in ``part_failures``."""
    failures = []  # type: list
    parts = {}
    for name in FALLBACKS:
        parts[name] = hal.build_part(failures, name, factories[name], FALLBACKS[name])
    stepper = parts["stepper"]
    parts.update(hal.build_part(failures, "gpio parts", lambda: pin_parts_factory(stepper),
                                pin_part_fallbacks))
    h = hal.Hal(board=board, **parts)
    h.part_failures.extend(failures)
    return h


def pin_part_fallbacks():
    """Stand-ins for the parts ``hal.pin_devices.pin_parts`` wires, as Hal keywords."""
    return {"encoder": InertEncoder(), "air": InertAirSensor(), "door": InertDoor(),
            "buttons": InertButtons(), "leds": InertLeds()}


def failed_hal(board, reason, service_port=None, clock=None):
    """A Hal of stand-ins only (``make_hal`` raised ``reason``): delivery can never start.

    The service port and clock are kept when the caller could still build them."""
    h = hal.Hal(board=board, stepper=InertStepper(), encoder=InertEncoder(),
                pressure_down=InertPressureSensor(), pressure_up=InertPressureSensor(),
                air=InertAirSensor(), door=InertDoor(), battery=InertBattery(),
                buttons=InertButtons(), buzzer=InertBuzzer(), leds=InertLeds(),
                display=InertDisplay(), storage=RamStorage(),
                clock=clock if clock is not None else InertClock(),
                watchdog=InertWatchdog(),
                service_port=service_port if service_port is not None else InertServicePort())
    h.part_failures.append(("hal", reason))
    return h


def with_ram_storage(h, reason):
    """The same Hal with its storage replaced by RAM (boot failed on the flash log)."""
    h.storage = RamStorage()
    h.part_failures.append(("storage", reason))
    return h
