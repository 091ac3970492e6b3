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
from hal.devices import AdcPressureSensor
from hal.pin_devices import PwmBuzzer, RtcClock, Ssd1306Display, WdtWatchdog, pin_parts
from hal.inert import guarded_hal
from hal.rp2040 import board_pico as board
from hal.rp2040.pio_steps import (TX_FIFO_DEPTH_WORDS, WORDS_PER_MOVE, count_dir_word,
                                   delay_for, max_pulses, step_train)
from hal.stdio_port import StdioServicePort
from hal.vfs_storage import FileStorage


CARRY_LIMIT_MOVES = 10   # 100 ms of ticks without room in the FIFO: a motor-drive fault


class PioStepper(hal.Stepper):
    """STEP/DIR pulse trains from PIO state machine 0, one move per call.

    ``move(steps, period_ms)`` is called from the 10 ms hard timer IRQ
    (``firmware.dose_driver.TimerDoseDriver``), so it never blocks and allocates
    nothing: it queues the two words of ``hal.rp2040.pio_steps`` (count and DIR,
    delay) only when the TX FIFO has room for both, sized so the train lasts at
    most ``TRAIN_BUDGET_PCT`` of the period.  Signed steps: negative = reverse
    (occlusion back-off); the PIO sets DIR from the move's own word, so a reverse
    move runs after the trains queued before it.  Steps that cannot be queued now
    are carried to the next move: the FIFO is full when late timer ticks fire back
    to back (the rp2 soft timer catches up missed periodic ticks at once, e.g. after
    a flash erase with IRQs off, shared/runtime/softtimer.c), or a move holds more
    pulses than fit in one period.  Only a backlog still there after
    ``CARRY_LIMIT_MOVES`` consecutive moves (100 ms) counts in ``overruns()``, a
    motor fault.  ``steps_issued()`` is the net position commanded since boot:
    forward steps minus reverse steps.  The enable line (EN, active low) is a
    plain GPIO the PIO never drives; a move while disabled is dropped (not
    counted anywhere), as before.
    """

    def __init__(self):
        self.en = Pin(board.PIN_EN, Pin.OUT, value=1)        # active low: disabled
        # STEP (set) and DIR (out) belong to the PIO: both start low (DIR low = forward)
        self.sm = rp2.StateMachine(0, step_train, freq=board.STEP_PIO_FREQ_HZ,
                                   set_base=Pin(board.PIN_STEP), out_base=Pin(board.PIN_DIR))
        self.sm.active(1)
        self.issued = 0
        self.overrun_count = 0
        self.carry = 0                    # signed steps not queued yet (FIFO full)
        self.carry_moves = 0              # consecutive moves that left a carry
        self.enabled = False

    def enable(self, on):
        self.enabled = bool(on)
        self.en.value(0 if on else 1)

    def move(self, steps, period_ms):
        total = steps + self.carry
        if not self.enabled:
            self.carry = 0                # a cut motor: nothing waits for it
            return
        if total == 0:
            self.carry = 0
            return
        # the SM only drains the FIFO, so room seen here is still there at put()
        if self.sm.tx_fifo() > TX_FIFO_DEPTH_WORDS - WORDS_PER_MOVE:
            self._keep(total)             # late ticks came back to back: next tick
            return
        n = total if total > 0 else -total
        most = max_pulses(period_ms, board.STEP_PIO_FREQ_HZ)
        if n > most:
            n = most
        move = n if total > 0 else -n
        self.sm.put(count_dir_word(move))
        self.sm.put(delay_for(n, period_ms, board.STEP_PIO_FREQ_HZ))
        self.issued += move
        if move == total:
            self.carry = 0
            self.carry_moves = 0
        else:
            self._keep(total - move)

    def _keep(self, steps):
        """Carry steps to the next move; a backlog older than CARRY_LIMIT_MOVES is a fault."""
        self.carry = steps
        self.carry_moves += 1
        if self.carry_moves > CARRY_LIMIT_MOVES:
            self.overrun_count += 1

    def steps_issued(self):
        return self.issued

    def overruns(self):
        """Moves refused because the PIO could not take them in time (0 unless broken)."""
        return self.overrun_count


class Rp2UsbPort(StdioServicePort):
    """USB CDC: the interpreter's stdio, Ctrl-C disabled (SR-SVC-4)."""

    def __init__(self):
        StdioServicePort.__init__(self, disable_ctrl_c=True)


def make_hal():
    """The Hal of a Pico reference pump; a part that fails to build is named, not raised."""
    return guarded_hal(board, {
        "stepper": PioStepper,
        "pressure_down": lambda: _pressure(board.ADC_PRESSURE_DOWN),
        "pressure_up": lambda: _pressure(board.ADC_PRESSURE_UP),
        "battery": _VsysBattery,
        "buzzer": lambda: PwmBuzzer(PWM(Pin(board.PIN_BUZZER))),
        "display": lambda: Ssd1306Display(I2C(board.I2C_ID, sda=Pin(board.PIN_I2C_SDA),
                                              scl=Pin(board.PIN_I2C_SCL)), board.DISPLAY_ADDR),
        "storage": lambda: FileStorage("/data"),
        "clock": lambda: RtcClock(machine.RTC()),
        "watchdog": lambda: WdtWatchdog(machine.WDT),
        "service_port": make_service_port,
    }, lambda stepper: pin_parts(board, Pin, stepper, ("PIN_CASSETTE_0", "PIN_CASSETTE_1")))


def make_service_port():
    """USB CDC service port (also built alone when the rest of the HAL fails)."""
    return Rp2UsbPort()


def _pressure(channel):
    adc = ADC(channel)
    return AdcPressureSensor(lambda: adc.read_u16() >> 4, board)


class _VsysBattery(hal.Battery):
    def __init__(self):
        self.adc = ADC(board.ADC_VSYS)
        self.stat = Pin(board.PIN_CHARGER_STAT, Pin.IN, Pin.PULL_UP)

    def voltage_mv(self):
        return self.adc.read_u16() * board.ADC_VREF_MV * board.VSYS_DIVIDER // 65535

    def charging(self):
        return self.stat.value() == 0

