"""Board-independent device drivers (hal/devices.py) with fake pins: debouncing,
calibration, door/cassette coding, buzzer and LED outputs, non-wrapping clock."""
import hal
from hal import devices, pin_devices


class FakePin:
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, value=1):
        self.v = value
        self.handler = None

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v

    def irq(self, handler=None, trigger=0):
        self.handler = handler


class Board:
    PRESSURE_ADC_OFFSET = 400
    PRESSURE_MMHG_PER_COUNT_NUM = 2
    PRESSURE_MMHG_PER_COUNT_DEN = 5


def test_key_bounce_is_not_a_press_and_a_hold_counts_once_SR_TH_6():
    pin = FakePin(1)
    keys = devices.DebouncedButtons([(hal.KEY_RUN_STOP, pin)])
    pin.v = 0                      # one-poll glitch (contact bounce)
    assert keys.poll() == 0
    pin.v = 1
    assert keys.poll() == 0
    pin.v = 0                      # real press, held for many polls
    presses = [keys.poll() for _ in range(10)]
    assert presses.count(hal.KEY_RUN_STOP) == 1
    pin.v = 1
    keys.poll()
    keys.poll()
    pin.v = 0
    assert [keys.poll() for _ in range(3)].count(hal.KEY_RUN_STOP) == 1   # second press


def test_pressure_calibration_maps_adc_to_mmhg():
    codes = [400, 650, 4095]
    sensor = devices.AdcPressureSensor(lambda: codes[0], Board())
    assert sensor.read_mmhg() == 0
    codes[0] = 650
    assert sensor.read_mmhg() == 100
    assert sensor.read_raw() == 650


def test_door_and_cassette_coding():
    latch, c0, c1 = FakePin(0), FakePin(0), FakePin(1)
    door = pin_devices.PinDoor(latch, (c0, c1))
    assert door.closed() and door.cassette_type() == 1
    latch.v = 1
    assert not door.closed()


def test_encoder_counts_rising_edges():
    pin = FakePin()
    enc = pin_devices.IrqEncoder(pin, 1)
    for _ in range(5):
        pin.handler(pin)
    assert enc.count() == 5


def test_buzzer_and_leds_drive_outputs():
    class FakePwm:
        def __init__(self):
            self.duty = None
            self.f = None

        def freq(self, f):
            self.f = f

        def duty_u16(self, d):
            self.duty = d
    pwm = FakePwm()
    buzzer = pin_devices.PwmBuzzer(pwm)
    buzzer.tone(880, 100)
    assert buzzer.is_on() and pwm.f == 880 and pwm.duty > 30000
    buzzer.off()
    assert not buzzer.is_on() and pwm.duty == 0
    r, a, g = FakePin(0), FakePin(0), FakePin(0)
    pin_devices.PinLeds(r, a, g).set(True, False, True)
    assert (r.v, a.v, g.v) == (1, 0, 1)


def test_pin_parts_wires_every_gpio_part_from_the_board_file():
    class Pin(FakePin):
        IN = 0
        OUT = 1
        PULL_UP = 2

        def __init__(self, number, mode=0, pull=None, value=1):
            FakePin.__init__(self, 1 if value is None else value)
            self.number = number

    class board_pico:            # the names a board file must define for pin_parts
        USTEP_VOLUME_PL = 15625
        ENCODER_PULSES_PER_REV = 1
        PIN_ENCODER, PIN_AIR_OUT, PIN_AIR_TEST, PIN_DOOR = 5, 6, 7, 8
        PIN_CASSETTE_0, PIN_CASSETTE_1 = 9, 10
        PIN_KEY_RUN_STOP, PIN_KEY_SELECT, PIN_KEY_BOLUS = 11, 12, 13
        PIN_KEY_UP, PIN_KEY_DOWN, PIN_KEY_SILENCE = 14, 15, 16
        PIN_LED_RED, PIN_LED_AMBER, PIN_LED_GREEN = 18, 19, 20

    class Stepper:
        def steps_issued(self):
            return 0
    parts = pin_devices.pin_parts(board_pico, Pin, Stepper(), ("PIN_CASSETTE_0", "PIN_CASSETTE_1"))
    assert sorted(parts) == ["air", "buttons", "door", "encoder", "leds"]
    assert [pin.number for _, pin in parts["buttons"].keys] == [11, 12, 13, 14, 15, 16]
    assert parts["door"].latch.number == board_pico.PIN_DOOR
