"""Sim backend of the HAL: thin adapters from each interface onto ``sim.world.World``.

Owns no physics (that is ``sim/``): each class reads or writes the world, and
records what the firmware drove (buzzer, LEDs, display) so tests can assert on
it.  Also provides the storage and service-port backends used off-device:
``RamStorage`` (in memory, with power-cut injection), ``PosixStorage`` (files in
a directory), ``QueueServicePort`` (in-memory) and ``StdioServicePort``
(stdin/stdout, for the virtual pump on a pseudo-terminal).
"""
import hal
from hal.devices import AdcPressureSensor
from hal.sim import board_sim
from hal.sim.storage import RamStorage, PosixStorage  # noqa: F401
from hal.sim.serial import QueueServicePort, StdioServicePort  # noqa: F401


class SimStepper(hal.Stepper):
    def __init__(self, world):
        self.world = world
        self.issued = 0
        self.refused = 0          # fault injection: moves the step generator refused

    def overruns(self):
        return self.refused

    def enable(self, on):
        self.world.motor_enabled = bool(on)

    def move(self, steps, period_ms):
        self.world.command_steps(steps, period_ms)
        if self.world.motor_enabled:
            self.issued += steps

    def steps_issued(self):
        return self.issued


class SimEncoder(hal.Encoder):
    def __init__(self, world, pulses_per_rev):
        self.world = world
        self.pulses_per_rev = pulses_per_rev

    def count(self):
        return self.world.encoder_count


class SimAirSensor(hal.AirSensor):
    def __init__(self, world):
        self.world = world
        self.self_test_ok = True

    def air_present(self):
        return self.world.air_present

    def take_air_nl(self):
        return self.world.take_air_nl()

    def self_test(self):
        return self.self_test_ok and not self.world.air_stuck


class SimDoor(hal.DoorSensor):
    def __init__(self, world):
        self.world = world

    def closed(self):
        return self.world.door_closed

    def cassette_type(self):
        return 1 if self.world.door_closed else 0


class SimBattery(hal.Battery):
    def __init__(self, world):
        self.world = world

    def voltage_mv(self):
        return self.world.battery_mv

    def charging(self):
        return self.world.battery.charging


class _SimContact:
    """One key's contact as a pin: level 1 released (pull-up), 0 pressed."""
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self):
        self.level = 1

    def value(self):
        return self.level

    def irq(self, handler=None, trigger=0):
        pass                      # SimButtons replays the edges itself, at their times


class SimButtons(hal.Buttons):
    """Scenario or test presses keys with ``press(mask)``; poll() returns them once.

    ``press(mask, bounces=n)`` models the physical contact instead (SR-TH-6): the
    contact closes with ``n`` bounces within ``BOUNCE_MS``, is held ``hold_ms``, and
    opens with ``n`` bounces; the edges reach the board's debouncer
    (``hal.devices.DebouncedButtons``) at their world times, as its pin IRQ would,
    so the press reaches the firmware through the device's key path (one press per
    physical press, reported at a poll after the contact settled)."""
    BOUNCE_MS = 5

    def __init__(self, world=None):
        self.pending = 0
        self.world = world
        self.contacts = None      # DebouncedButtons over _SimContact pins, on first use
        self.edges = []           # (t_ms, order, key index, level) not yet reached
        self.seq = 0

    def press(self, mask, bounces=0, hold_ms=120):
        if not bounces:
            self.pending |= mask
            return
        if self.contacts is None:
            from hal.devices import DebouncedButtons
            keys = [(1 << b, _SimContact()) for b in range(6)]
            self.contacts = DebouncedButtons(keys, ticks_ms=self._now, irq=False)
        t0 = self._now()
        for b in range(6):
            if not mask & (1 << b):
                continue
            for start, level in ((t0, 0), (t0 + hold_ms, 1)):
                # n bounces: the contact flips 2n times within BOUNCE_MS, then settles
                flips = 2 * bounces
                for k in range(flips):
                    self._edge(start + k * self.BOUNCE_MS // flips, b,
                               level if k % 2 == 0 else 1 - level)
                self._edge(start + self.BOUNCE_MS, b, level)
        self.edges.sort()

    def _edge(self, t, b, level):
        self.seq += 1                 # keeps edges of the same millisecond in order
        self.edges.append((t, self.seq, b, level))

    def _now(self):
        return self.world.t_ms if self.world is not None else 0

    def poll(self):
        keys = self.pending
        self.pending = 0
        contacts = self.contacts
        if contacts is not None:
            edges = self.edges
            now = self._now()
            while edges and edges[0][0] <= now:
                t, _, i, level = edges.pop(0)
                pin = contacts.keys[i][1]
                if pin.level != level:
                    pin.level = level
                    contacts.edge(i, t)
            keys |= contacts.poll()
        return keys


class SimBuzzer(hal.Buzzer):
    """Models a board with sounder current sense; ``broken`` injects a dead sounder."""

    def __init__(self):
        self.freq_hz = 0
        self.volume_pct = 0       # as last driven (tests of alarm escalation read it)
        self.tones = 0
        self.broken = False

    def tone(self, freq_hz, volume_pct):
        if not self.freq_hz:
            self.tones += 1
        self.freq_hz = freq_hz
        self.volume_pct = volume_pct

    def off(self):
        self.freq_hz = 0
        self.volume_pct = 0

    def is_on(self):
        return self.freq_hz != 0

    def self_test(self):
        return self.freq_hz != 0 and not self.broken


# every (red, amber, green) state, built once: set() is called every cycle
_LED_STATES = tuple((bool(i & 4), bool(i & 2), bool(i & 1)) for i in range(8))


class SimLeds(hal.Leds):
    """Models a board with LED current sense; ``broken`` injects a dead LED."""

    def __init__(self):
        self.state = _LED_STATES[0]
        self.broken = False

    def self_test(self):
        return self.state == _LED_STATES[7] and not self.broken

    def set(self, red, amber, green):
        self.state = _LED_STATES[(4 if red else 0) | (2 if amber else 0) | (1 if green else 0)]


class SimDisplay(hal.Display):
    def __init__(self):
        self.lines = []

    def show(self, lines):
        # the firmware renders a new list each time: keep it rather than copy it
        self.lines = lines if isinstance(lines, list) else list(lines)


class SimClock(hal.Clock):
    """Virtual time: the world's clock; the RTC starts at a fixed date."""
    RTC_EPOCH_S = 1795000000          # 2026-11-18, so logs carry a plausible date

    def __init__(self, world):
        self.world = world
        self.rtc_offset_s = self.RTC_EPOCH_S

    def ticks_ms(self):
        return self.world.t_ms

    def rtc_s(self):
        return self.rtc_offset_s + self.world.t_ms // 1000

    def set_rtc_s(self, seconds):
        self.rtc_offset_s = seconds - self.world.t_ms // 1000

    def sleep_ms(self, ms):
        pass   # virtual time only moves with world.advance()


class SimWatchdog(hal.Watchdog):
    """Records the last feed; ``starved(timeout)`` tells a test it would have bitten."""

    def __init__(self, clock):
        self.clock = clock
        self.timeout_ms = None
        self.last_feed_ms = None

    def start(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.last_feed_ms = self.clock.ticks_ms()

    def feed(self):
        self.last_feed_ms = self.clock.ticks_ms()

    def starved(self):
        return (self.timeout_ms is not None and
                self.clock.ticks_ms() - self.last_feed_ms > self.timeout_ms)


def make_sim_hal(world, cycle_ms=1000, service_port=None, storage=None):
    """A complete Hal over ``world``; the firmware cycle is ``cycle_ms``."""

    class Board:
        pass
    board = Board()
    for name in dir(board_sim):
        if name.isupper():
            setattr(board, name, getattr(board_sim, name))
    board.CYCLE_MS = cycle_ms
    clock = SimClock(world)
    return hal.Hal(
        board=board,
        stepper=SimStepper(world),
        encoder=SimEncoder(world, board.ENCODER_PULSES_PER_REV),
        pressure_down=AdcPressureSensor(world.pressure_adc_down, board),
        pressure_up=AdcPressureSensor(world.pressure_adc_up, board),
        air=SimAirSensor(world),
        door=SimDoor(world),
        battery=SimBattery(world),
        buttons=SimButtons(world),
        buzzer=SimBuzzer(),
        leds=SimLeds(),
        display=SimDisplay(),
        storage=storage if storage is not None else RamStorage(),
        clock=clock,
        watchdog=SimWatchdog(clock),
        service_port=service_port if service_port is not None else QueueServicePort(),
    )
