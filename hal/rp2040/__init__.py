"""RP2040 backend of the HAL (Raspberry Pi Pico reference board).

Owns the mapping of each HAL interface onto RP2040 peripherals: PIO step
generator, pin IRQs for the encoder and air detector, ADC for pressure and
battery, PWM buzzer, SSD1306 display over I2C, littlefs storage, machine.WDT,
USB CDC service port.  Every pin comes from ``board_pico``.  Device code: it
imports ``machine`` and ``rp2`` and only runs on the board (CI compiles it with
mpy-cross; the behaviour is covered through the sim backend).
"""
import machine
import rp2
from machine import ADC, I2C, PWM, Pin

import hal
from hal.devices import (AdcPressureSensor, PwmBuzzer, RtcClock, Ssd1306Display, WdtWatchdog,
                         pin_parts)
from hal.rp2040 import board_pico as board
from hal.rp2040.pio_steps import step_train
from hal.stdio_port import StdioServicePort
from hal.vfs_storage import FileStorage


class PioStepper(hal.Stepper):
    """Step pulses from PIO state machine 0, spread evenly over each period."""

    PIO_OVERHEAD_CYCLES = 6

    def __init__(self):
        self.en = Pin(board.PIN_EN, Pin.OUT, value=1)        # active low: disabled
        self.dir = Pin(board.PIN_DIR, Pin.OUT, value=0)      # forward
        self.sm = rp2.StateMachine(0, step_train, freq=board.STEP_PIO_FREQ_HZ,
                                   set_base=Pin(board.PIN_STEP))
        self.sm.active(1)
        self.issued = 0
        self.enabled = False

    def enable(self, on):
        self.enabled = bool(on)
        self.en.value(0 if on else 1)

    def move(self, steps, period_ms):
        if steps <= 0 or not self.enabled:
            return
        cycles = period_ms * (board.STEP_PIO_FREQ_HZ // 1000) // steps
        half = (cycles - self.PIO_OVERHEAD_CYCLES) // 2
        self.sm.put(steps - 1)
        self.sm.put(half if half > 0 else 1)
        self.issued += steps

    def steps_issued(self):
        return self.issued


class Rp2UsbPort(StdioServicePort):
    """USB CDC: the interpreter's stdio, Ctrl-C disabled (SR-SVC-4)."""

    def __init__(self):
        StdioServicePort.__init__(self, disable_ctrl_c=True)


def make_hal():
    """The Hal of a Pico reference pump."""
    stepper = PioStepper()
    return hal.Hal(
        board=board,
        stepper=stepper,
        pressure_down=AdcPressureSensor(lambda a=ADC(board.ADC_PRESSURE_DOWN): a.read_u16() >> 4,
                                        board),
        pressure_up=AdcPressureSensor(lambda a=ADC(board.ADC_PRESSURE_UP): a.read_u16() >> 4,
                                      board),
        battery=_VsysBattery(),
        buzzer=PwmBuzzer(PWM(Pin(board.PIN_BUZZER))),
        display=Ssd1306Display(I2C(board.I2C_ID, sda=Pin(board.PIN_I2C_SDA),
                                   scl=Pin(board.PIN_I2C_SCL)), board.DISPLAY_ADDR),
        storage=FileStorage("/data"),
        clock=RtcClock(machine.RTC()),
        watchdog=WdtWatchdog(machine.WDT),
        service_port=Rp2UsbPort(),
        **pin_parts(board, Pin, stepper, ("PIN_CASSETTE_0", "PIN_CASSETTE_1"))
    )


class _VsysBattery(hal.Battery):
    def __init__(self):
        self.adc = ADC(board.ADC_VSYS)
        self.stat = Pin(board.PIN_CHARGER_STAT, Pin.IN, Pin.PULL_UP)

    def voltage_mv(self):
        return self.adc.read_u16() * board.ADC_VREF_MV * board.VSYS_DIVIDER // 65535

    def charging(self):
        return self.stat.value() == 0

