"""ESP32 backend of the HAL (second platform, ESP32-S3-DevKitC-1 reference wiring).

Owns the ESP32 specifics: the step train from LEDC PWM gated by a one-shot
timer, ADC1 with 11 dB attenuation, the service port on UART1.  Shared drivers
come from ``hal.devices``.  Limitation: the PWM+timer step train may be off by
one pulse per period (no PIO on the ESP32); the encoder cross-check of
SR-CORE-6 (later issue) bounds the resulting volume error.  Signed moves:
negative steps set DIR high (1 = reverse, as ``hal.rp2040.pio_steps``) before
the train of |steps| pulses starts (the back-off after an occlusion stop,
SR-CORE-4).  Device code, only runs on the board.
"""
import machine
from machine import ADC, I2C, PWM, Pin, Timer, UART

import hal
from hal.devices import AdcPressureSensor
from hal.pin_devices import PwmBuzzer, RtcClock, Ssd1306Display, WdtWatchdog, pin_parts
from hal.esp32 import board_devkit as board
from hal.inert import guarded_hal
from hal.vfs_storage import FileStorage


class PwmTimerStepper(hal.Stepper):
    """|``steps``| pulses at |steps|/period frequency, stopped by a one-shot timer; DIR 0
    forward, 1 reverse (negative ``steps``).  ``issued`` counts signed steps."""

    def __init__(self):
        self.en = Pin(board.PIN_EN, Pin.OUT, value=1)
        self.dir = Pin(board.PIN_DIR, Pin.OUT, value=0)
        self.reverse = 0           # the DIR level set (not read back from the pin)
        self.pin = Pin(board.PIN_STEP, Pin.OUT, value=0)
        self.pwm = None
        self.timer = Timer(0)
        self.issued = 0
        self.enabled = False

    def enable(self, on):
        self.enabled = bool(on)
        self.en.value(0 if on else 1)
        if not on:
            self._stop(None)

    def _stop(self, _t):
        if self.pwm is not None:
            self.pwm.deinit()
            self.pwm = None
            self.pin.value(0)

    def move(self, steps, period_ms):
        if steps == 0 or not self.enabled:
            return
        reverse = 1 if steps < 0 else 0
        n = -steps if reverse else steps
        if reverse != self.reverse:
            self._stop(None)       # a train still running must not turn the other way
            self.dir.value(reverse)  # set while STEP is low: DIR setup before the first edge
            self.reverse = reverse
        freq = n * 1000 // period_ms
        if freq < 1:
            freq = 1
        self.pwm = PWM(self.pin, freq=freq, duty_u16=32768)
        self.timer.init(mode=Timer.ONE_SHOT, period=period_ms, callback=self._stop)
        self.issued += steps

    def steps_issued(self):
        return self.issued


class UartServicePort(hal.ServicePort):
    def __init__(self, uart):
        self.uart = uart

    def read(self, max_bytes):
        data = self.uart.read(max_bytes)
        return data if data else b""

    def write(self, data):
        self.uart.write(data)


def _adc(pin):
    a = ADC(Pin(pin))
    a.atten(ADC.ATTN_11DB)
    return a


class _AdcBattery(hal.Battery):
    def __init__(self):
        self.adc = _adc(board.PIN_ADC_BATTERY)
        self.stat = Pin(board.PIN_CHARGER_STAT, Pin.IN, Pin.PULL_UP)

    def voltage_mv(self):
        return self.adc.read_uv() * board.BATTERY_DIVIDER // 1000

    def charging(self):
        return self.stat.value() == 0


def make_hal():
    """The Hal of an ESP32-S3 reference pump; a part that fails to build is named, not raised."""
    return guarded_hal(board, {
        "stepper": PwmTimerStepper,
        "pressure_down": lambda: _pressure(board.PIN_ADC_PRESSURE_DOWN),
        "pressure_up": lambda: _pressure(board.PIN_ADC_PRESSURE_UP),
        "battery": _AdcBattery,
        "buzzer": lambda: PwmBuzzer(PWM(Pin(board.PIN_BUZZER))),
        "display": lambda: Ssd1306Display(I2C(0, sda=Pin(board.PIN_I2C_SDA),
                                              scl=Pin(board.PIN_I2C_SCL)), board.DISPLAY_ADDR),
        "storage": lambda: FileStorage("/data"),
        "clock": lambda: RtcClock(machine.RTC()),
        "watchdog": lambda: WdtWatchdog(machine.WDT),
        "service_port": make_service_port,
    }, lambda stepper: pin_parts(board, Pin, stepper, ("PIN_CASSETTE_0",)))


def make_service_port():
    """UART1 service port (also built alone when the rest of the HAL fails)."""
    return UartServicePort(UART(board.UART_ID, baudrate=board.UART_BAUD, tx=board.PIN_UART_TX,
                                rx=board.PIN_UART_RX, timeout=0))


def _pressure(pin):
    adc = _adc(pin)
    return AdcPressureSensor(lambda: adc.read_u16() >> 4, board)
