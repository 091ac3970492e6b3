"""Hardware abstraction layer: one interface per part of the pump, and the Hal bundle.

Owns the contract between the firmware and any hardware (SPEC §2): the
firmware receives a ``Hal`` and calls only these methods; it never imports a
backend or ``machine``.  Backends live in ``hal/rp2040``, ``hal/esp32`` and
``hal/sim``, each with a board file holding every pin and constant.  Every
method here raises NotImplementedError: a backend that forgets one fails
loudly instead of silently doing nothing.
"""

KEY_RUN_STOP = 1
KEY_SELECT = 2
KEY_BOLUS = 4
KEY_UP = 8
KEY_DOWN = 16
KEY_SILENCE = 32


def _missing(obj, name):
    raise NotImplementedError("%s.%s not implemented by this backend" %
                              (type(obj).__name__, name))


class Stepper:
    """Pump motor driver (STEP/DIR/EN, 16 microsteps)."""

    def enable(self, on):
        """Energise (True) or cut (False) the driver enable line."""
        _missing(self, "enable")

    def move(self, steps, period_ms):
        """Emit ``steps`` forward microsteps spread evenly over the next period."""
        _missing(self, "move")

    def steps_issued(self):
        """Total microsteps emitted since boot."""
        _missing(self, "steps_issued")

    def overruns(self):
        """Moves the step generator could not take (a train still queued): 0 when healthy."""
        return 0


class Encoder:
    """Cam-shaft motion sensor (hall/optical).  ``pulses_per_rev`` per cam turn."""
    pulses_per_rev = 1

    def count(self):
        """Pulses since boot."""
        _missing(self, "count")


class PressureSensor:
    """Force sensor on the cassette, 12-bit ADC, calibrated to mmHg."""

    def read_raw(self):
        """Latest ADC code, 0..4095."""
        _missing(self, "read_raw")

    def read_mmhg(self):
        """Calibrated gauge pressure, mmHg (int)."""
        _missing(self, "read_mmhg")


class AirSensor:
    """Ultrasonic air-in-line detector with a self-test input."""

    def air_present(self):
        """True while the detector sees air."""
        _missing(self, "air_present")

    def take_air_nl(self):
        """Air volume that passed the detector since the last call, nL; resets."""
        _missing(self, "take_air_nl")

    def self_test(self):
        """Drive the self-test input and check the output follows; True if healthy."""
        _missing(self, "self_test")


class DoorSensor:
    """Door latch switch and cassette-type coding pins."""

    def closed(self):
        _missing(self, "closed")

    def cassette_type(self):
        """Coded cassette type, 0 = none fitted."""
        _missing(self, "cassette_type")


class Battery:
    """Battery voltage ADC and charger status."""

    def voltage_mv(self):
        _missing(self, "voltage_mv")

    def charging(self):
        _missing(self, "charging")


class Buttons:
    """Run/stop, select, silence, up/down and the PCA bolus button on a cord."""

    def poll(self):
        """Bitmask (KEY_*) of debounced presses since the last poll."""
        _missing(self, "poll")


class Buzzer:
    """Alarm sounder (PWM)."""

    def tone(self, freq_hz, volume_pct):
        _missing(self, "tone")

    def off(self):
        _missing(self, "off")

    def is_on(self):
        _missing(self, "is_on")

    def self_test(self):
        """Prove the sounder works (True/False), or None: not testable on this board."""
        return None


class Leds:
    """Red / amber / green status LEDs."""

    def set(self, red, amber, green):
        _missing(self, "set")

    def self_test(self):
        """Prove each LED lights (True/False), or None: not testable on this board."""
        return None


class Display:
    """128x64 display: up to 8 lines of 21 characters."""

    def show(self, lines):
        _missing(self, "show")


class Storage:
    """Files on the internal flash (littlefs on the device)."""

    def open(self, name, mode):
        _missing(self, "open")

    def exists(self, name):
        _missing(self, "exists")

    def size(self, name):
        _missing(self, "size")

    def remove(self, name):
        _missing(self, "remove")

    def rename(self, old, new):
        _missing(self, "rename")

    def listdir(self):
        _missing(self, "listdir")


class Clock:
    """Monotonic milliseconds and the RTC."""

    def ticks_ms(self):
        """Monotonic milliseconds since boot (never goes back)."""
        _missing(self, "ticks_ms")

    def rtc_s(self):
        """Wall-clock time, Unix seconds."""
        _missing(self, "rtc_s")

    def set_rtc_s(self, seconds):
        _missing(self, "set_rtc_s")

    def sleep_ms(self, ms):
        _missing(self, "sleep_ms")


class Watchdog:
    """Hardware watchdog: once started it resets the MCU unless fed."""

    def start(self, timeout_ms):
        _missing(self, "start")

    def feed(self):
        _missing(self, "feed")

    def self_test(self):
        """Prove the watchdog bites (True/False), or None: not testable on this board."""
        return None


class ServicePort:
    """USB CDC serial (UART on ESP32 boards) for the service protocol."""

    def read(self, max_bytes):
        """Available bytes (b'' when none); never blocks."""
        _missing(self, "read")

    def write(self, data):
        _missing(self, "write")


class Hal:
    """One instance of each part plus the board constants, handed to the firmware."""

    def __init__(self, board, stepper, encoder, pressure_down, pressure_up, air, door,
                 battery, buttons, buzzer, leds, display, storage, clock, watchdog,
                 service_port):
        self.board = board
        self.stepper = stepper
        self.encoder = encoder
        self.pressure_down = pressure_down
        self.pressure_up = pressure_up
        self.air = air
        self.door = door
        self.battery = battery
        self.buttons = buttons
        self.buzzer = buzzer
        self.leds = leds
        self.display = display
        self.storage = storage
        self.clock = clock
        self.watchdog = watchdog
        self.service_port = service_port
        self.part_failures = []     # (part, reason) of parts replaced by inert stand-ins


def build_part(failures, part, factory, fallback):
    """``factory()``, or ``fallback()`` with (part, reason) added to ``failures``.

    Board backends build each part through this, so a missing or dead device (an
    I2C display that does not answer raises OSError on the rp2 port) becomes a
    named self-test failure instead of an exception out of ``make_hal``."""
    try:
        return factory()
    except Exception as e:  # noqa: BLE001 -- any failure of a part is reported, never raised
        failures.append((part, "%s: %s" % (type(e).__name__, e)))
        return fallback()
