# mypy: ignore-errors
"""PIO program of the RP2040 step generator and its exact timing (PIO assembler DSL: not
type-checked).

Owns the STEP/DIR pulse train and the arithmetic that sizes it: the program run by
the state machine, the two FIFO words of a move, and the pure, allocation-free
functions that give a move's delay word and its exact length in PIO cycles.  It
never touches a pin or the FIFO itself (``PioStepper`` in ``hal/rp2040`` does).
The state machine runs at ``board_pico.STEP_PIO_FREQ_HZ`` (1 MHz: 1 cycle = 1 us).

A move is two TX FIFO words from the CPU:

* word 1, ``count_dir_word(steps)``: bit 0 = DIR level (0 forward, 1 reverse),
  bits 31..1 = pulses - 1;
* word 2, ``delay_for(...)``: the delay ``d`` of the low-time loop.

The program, cycle by cycle (one PIO instruction = one cycle, no delay fields,
no side-set; a move starts when ``pull`` finds word 1 in the FIFO, cycle 0)::

    0  pull(block)          c0           OSR <- word 1
    1  out(pins, 1)         c1           DIR pin <- bit 0 (out_base = DIR)
    2  out(y, 31)           c2           y <- pulses - 1
    3  pull(block)          c3           OSR <- word 2 (d)
  pulse:
    4  set(pins, 1)         1 cycle      STEP rises          (set_base = STEP)
    5  mov(x, osr)          1 cycle      x <- d, STEP still high
    6  set(pins, 0)         1 cycle      STEP falls
  low:
    7  jmp(x_dec, "low")    d + 1 cycles x = d .. 0
    8  jmp(y_dec, "pulse")  1 cycle      next pulse while y-- != 0, else wrap to 0

* STEP high: 2 cycles (``STEP_HIGH_CYCLES``; 2 us at 1 MHz, the TMC2209 needs 100 ns).
* STEP low: d + 3 cycles (>= 3 us, TMC2209 minimum 100 ns).
* One pulse: d + 5 cycles (``PULSE_FIXED_CYCLES`` + d), the same for every pulse.
* Per move: 4 cycles before the first rising edge (``MOVE_OVERHEAD_CYCLES``: pull,
  out, out, pull); the move is over, and the next move's ``pull`` runs, exactly
  ``train_cycles(n, d) = 4 + n * (d + 5)`` cycles after its first ``pull``.
* DIR setup: DIR is written at cycle 1 and STEP rises at cycle 4, so DIR is
  stable ``DIR_SETUP_CYCLES`` = 3 cycles (3 us; TMC2209 needs 20 ns) before the
  first edge, longer if word 2 arrives after word 1 (the second ``pull`` waits).
  DIR hold: the previous move's last rising edge is >= d + 6 cycles before the
  next ``out(pins, 1)`` (TMC2209 needs 20 ns).  Because DIR travels in the FIFO
  with its pulses, a reverse move queued behind a forward one changes DIR only
  after the forward train has finished: the CPU never writes the DIR pin.

``delay_for`` sizes ``d`` so the whole move, overhead included, lasts at most
``TRAIN_BUDGET_PCT`` (90 %) of the period: one tick's train is always over
before the next tick's IRQ, so the FIFO never fills and ``sm.put`` never blocks.
(The previous program took 2*half + 7 cycles a pulse, not the 2*half + 6 its
caller assumed, plus 3 per move, so at most rates a 10 ms train overran its tick
and the backlog grew every tick: issue 5, D3.)

The FIFO is joined (``JOIN_TX``): 8 words, room for 4 queued moves.
"""
import rp2

try:
    from micropython import const
except ImportError:  # CPython (host tests with tests/fakes/rp2.py)
    def const(x):
        return x

STEP_HIGH_CYCLES = const(2)          # set(pins, 1) + mov(x, osr)
PULSE_FIXED_CYCLES = const(5)        # one pulse = delay + 5 cycles
MOVE_OVERHEAD_CYCLES = const(4)      # pull, out(pins), out(y), pull
DIR_SETUP_CYCLES = const(3)          # out(pins, 1) at cycle 1 -> first rising edge at cycle 4
TRAIN_BUDGET_PCT = const(90)         # a move fills at most 90 % of its period
TX_FIFO_DEPTH_WORDS = const(8)       # 4-word TX FIFO joined with the RX FIFO (JOIN_TX)
WORDS_PER_MOVE = const(2)
DIR_FORWARD = const(0)               # DIR pin level of a forward (delivery) move
DIR_REVERSE = const(1)


def budget_cycles(period_ms, freq_hz):
    """PIO cycles a move may last: TRAIN_BUDGET_PCT of the period (freq_hz: whole kHz)."""
    return period_ms * (freq_hz // 1000) * TRAIN_BUDGET_PCT // 100


def delay_for(steps, period_ms, freq_hz):
    """Delay word of a move of ``steps`` pulses (> 0) in ``period_ms``, or -1 if it cannot
    fit: ``train_cycles(steps, d) <= budget_cycles(period_ms, freq_hz)``."""
    if steps <= 0:
        return -1
    return (budget_cycles(period_ms, freq_hz) - MOVE_OVERHEAD_CYCLES) // steps - PULSE_FIXED_CYCLES


def max_pulses(period_ms, freq_hz):
    """Most pulses one move of ``period_ms`` can carry (delay word 0)."""
    return (budget_cycles(period_ms, freq_hz) - MOVE_OVERHEAD_CYCLES) // PULSE_FIXED_CYCLES


def pulse_cycles(delay):
    """PIO cycles of one STEP pulse (rising edge to rising edge) with delay word ``delay``."""
    return delay + PULSE_FIXED_CYCLES


def train_cycles(steps, delay):
    """Exact PIO cycles of a move of ``steps`` pulses (> 0): first pull to next pull."""
    return MOVE_OVERHEAD_CYCLES + steps * (delay + PULSE_FIXED_CYCLES)


def count_dir_word(steps):
    """Word 1 of a move of signed ``steps`` (!= 0; negative = reverse)."""
    if steps < 0:
        return ((-steps - 1) << 1) | DIR_REVERSE
    return ((steps - 1) << 1) | DIR_FORWARD


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW, out_init=rp2.PIO.OUT_LOW,
             out_shiftdir=rp2.PIO.SHIFT_RIGHT, fifo_join=rp2.PIO.JOIN_TX)
def step_train():
    # the cycle-by-cycle table is in the module docstring; keep both in step
    pull(block)                 # word 1: (pulses - 1) << 1 | dir
    out(pins, 1)                # DIR
    out(y, 31)                  # pulses - 1
    pull(block)                 # word 2: delay of the low loop
    label("pulse")
    set(pins, 1)                # STEP high ...
    mov(x, osr)                 # ... for 2 cycles
    set(pins, 0)
    label("low")
    jmp(x_dec, "low")           # delay + 1 cycles
    jmp(y_dec, "pulse")
