# mypy: ignore-errors
"""PIO program of the RP2040 step generator (PIO assembler DSL: not type-checked).

Owns the pulse train: pull a count (pulses - 1) and a half-period delay, then
emit that many STEP pulses with the delay high and low, counted in PIO
cycles.  The state machine runs at ``board_pico.STEP_PIO_FREQ_HZ``.
"""
import rp2


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
def step_train():
    # TX FIFO words from the CPU: pulse count - 1, then the half-period delay
    pull(block)
    mov(y, osr)
    pull(block)
    label("pulse")
    set(pins, 1)
    mov(x, osr)
    label("high")
    jmp(x_dec, "high")
    set(pins, 0)
    mov(x, osr)
    label("low")
    jmp(x_dec, "low")
    jmp(y_dec, "pulse")
