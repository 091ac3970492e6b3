"""The RP2040 PIO step train keeps inside its 10 ms tick (issue 5, defect D3).

Owns the evidence for ``hal/rp2040/pio_steps.py`` and ``PioStepper``: the program,
assembled by the fake ``rp2`` (``tests/fakes/rp2.py``) and run cycle by cycle in
pioemu, has the documented pulse widths and per-move cost; DIR travels with its
pulses, so reverse (occlusion back-off) moves queue in order behind forward ones;
at every programmable rate one tick's train fits in 90 % of the tick, so the hard
timer IRQ never finds the TX FIFO full (on the port ``put`` would busy-wait there:
the fake raises ``BlockedInIrq``), the backlog never grows and the application is
never starved into a false heartbeat stop (SR-CORE-7).

The previous program cost 2*half + 7 cycles a pulse where its caller assumed
half*2 + 6; ``test_previous_program_overran_...`` keeps that finding reproducible.
"""
import importlib
import random
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hal
from tests.fakes import machine as fake_machine
from tests.fakes import rp2 as fake_rp2

TICK_MS = 10
USTEP_VOLUME_PL = 15625
RATES_UL_PER_H = range(100, 500001, 100)       # SR-TH-2: 0.1..500 mL/h in 0.1 mL/h steps
BACKOFF_MAX_STEPS = 320                         # 5 uL (0.005 mL) reverse move
BUDGET_PCT = 90


@pytest.fixture(scope="module")
def dev():
    """hal.rp2040 imported against the fake rp2 and machine; sys.modules restored after."""
    names = ("rp2", "machine", "hal.rp2040", "hal.rp2040.pio_steps", "hal.rp2040.board_pico")
    saved = {name: sys.modules.pop(name, None) for name in names}
    saved_attr = hal.__dict__.get("rp2040")
    sys.modules["rp2"] = fake_rp2
    sys.modules["machine"] = fake_machine
    try:
        backend = importlib.import_module("hal.rp2040")
        ps = importlib.import_module("hal.rp2040.pio_steps")
        board = backend.board
        yield types.SimpleNamespace(
            backend=backend, ps=ps, board=board, freq_hz=board.STEP_PIO_FREQ_HZ,
            tick_cycles=TICK_MS * board.STEP_PIO_FREQ_HZ // 1000,
            budget_cycles=TICK_MS * board.STEP_PIO_FREQ_HZ // 1000 * BUDGET_PCT // 100)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if saved_attr is None:
            hal.__dict__.pop("rp2040", None)
        else:
            hal.rp2040 = saved_attr
        fake_rp2.reset()


def new_stepper(dev, fast_forward=True):
    fake_rp2.reset()
    stepper = dev.backend.PioStepper()
    stepper.sm.fast_forward = fast_forward
    stepper.enable(True)
    return stepper


def per_tick_bounds(rate_ul_per_h):
    """Floor and ceiling of the microsteps one 10 ms tick carries at this rate."""
    num = rate_ul_per_h * 1000000 * TICK_MS          # pL x ms per h
    den = 3600000 * USTEP_VOLUME_PL                  # ms per h x pL per microstep
    lo = num // den
    return lo, lo + (1 if num % den else 0)


def pulses(sm, step_gpio, dir_gpio):
    """STEP rising edges (cycle, DIR level), falling edge cycles, DIR change cycles."""
    rises, falls, dir_changes = [], [], []
    prev = sm.initial_pins
    for cycle, pins in sm.trace:
        step_now, step_before = pins >> step_gpio & 1, prev >> step_gpio & 1
        if step_now and not step_before:
            rises.append((cycle, pins >> dir_gpio & 1))
        elif step_before and not step_now:
            falls.append(cycle)
        if (pins ^ prev) >> dir_gpio & 1:
            dir_changes.append(cycle)
        prev = pins
    return rises, falls, dir_changes


# ---- the fake assembler is the RP2040's ------------------------------------------------

def test_fake_asm_pio_emits_the_rp2040_opcodes_SR_CORE_7():
    """Opcodes of the datasheet squarewave and the pico-examples ws2812 programs."""
    PIO = fake_rp2.PIO

    @fake_rp2.asm_pio(set_init=PIO.OUT_LOW)
    def squarewave():
        set(pindirs, 1)
        label("again")
        set(pins, 1)[1]
        set(pins, 0)
        jmp("again")

    assert list(squarewave[0]) == [0xE081, 0xE101, 0xE000, 0x0001]

    @fake_rp2.asm_pio(sideset_init=PIO.OUT_LOW, out_shiftdir=PIO.SHIFT_LEFT, autopull=True,
                      pull_thresh=24)
    def ws2812():
        T1, T2, T3 = 2, 5, 3
        wrap_target()
        label("bitloop")
        out(x, 1).side(0)[T3 - 1]
        jmp(not_x, "do_zero").side(1)[T1 - 1]
        jmp("bitloop").side(1)[T2 - 1]
        label("do_zero")
        nop().side(0)[T2 - 1]
        wrap()

    assert list(ws2812[0]) == [0x6221, 0x1123, 0x1400, 0xA442]
    assert ws2812[3] == 3 << 12                     # EXECCTRL: wrap 3 -> 0, side-set not optional
    assert ws2812[4] == 24 << 25 | 1 << 17          # SHIFTCTRL: pull_thresh 24, autopull, left

    @fake_rp2.asm_pio(sideset_init=PIO.OUT_LOW, fifo_join=PIO.JOIN_TX,
                      out_shiftdir=PIO.SHIFT_RIGHT)
    def forms():
        pull(block)
        pull(noblock)
        pull(ifempty, block)
        push(iffull, noblock)
        mov(x, osr).side(1)
        mov(y, invert(x))[7]
        out(y, 31)
        out(pins, 1)
        in_(pins, 32)
        jmp(x_dec, 0)
        jmp(y_dec, 0)
        wait(1, gpio, 5)
        irq(block, 2)

    # optional side-set (not every instruction has one): enable bit 12, value at bit 11,
    # 3 delay bits left
    assert list(forms[0]) == [0x80A0, 0x8080, 0x80E0, 0x8040, 0xB827, 0xA749, 0x605F,
                              0x6001, 0x4000, 0x0040, 0x0080, 0x2085, 0xC022]
    assert forms[3] == 1 << 30 | 12 << 12            # SIDE_EN, wrap top 12
    assert forms[4] == 1 << 30 | 1 << 19             # FJOIN_TX, OUT_SHIFTDIR right


def test_fake_put_on_a_full_fifo_fails_loudly_SR_CORE_7(dev):
    """rp2_state_machine_put busy-waits on a full FIFO; the fake raises instead."""
    fake_rp2.reset()
    sm = fake_rp2.StateMachine(0, dev.ps.step_train, freq=dev.freq_hz, set_base=2, out_base=3)
    for word in range(sm.tx_depth):                 # not active: nothing drains
        sm.put(word)
    assert sm.tx_fifo() == sm.tx_depth
    with pytest.raises(fake_rp2.BlockedInIrq):
        sm.put(0)


# ---- the program: exact, documented timing ---------------------------------------------

def test_step_train_is_one_cycle_per_instruction_with_joined_fifo_SR_CORE_7(dev):
    prog = dev.ps.step_train
    assert all((op >> 8) & 0x1F == 0 for op in prog[0])   # no delay or side-set fields
    assert prog[4] >> 30 & 3 == fake_rp2.PIO.JOIN_TX       # 8-word TX FIFO
    stepper = new_stepper(dev)
    assert stepper.sm.tx_depth == dev.ps.TX_FIFO_DEPTH_WORDS == 8


@pytest.mark.parametrize("steps,delay", [(1, 0), (2, 1), (5, 17), (89, 95), (3, 2000)])
def test_pulse_widths_and_cycles_match_the_documented_formulas_SR_CORE_6_7(dev, steps, delay):
    """Plain pioemu (no fast-forward): widths, period, per-move overhead, train length."""
    ps = dev.ps
    stepper = new_stepper(dev, fast_forward=False)
    sm = stepper.sm
    sm.put(ps.count_dir_word(steps))
    sm.put(delay)
    sm.run_cycles(ps.train_cycles(steps, delay) + 20)
    rises, falls, dir_changes = pulses(sm, dev.board.PIN_STEP, dev.board.PIN_DIR)
    assert len(rises) == len(falls) == steps
    assert rises[0][0] == ps.MOVE_OVERHEAD_CYCLES                 # first pull at cycle 0
    assert all(f - r == ps.STEP_HIGH_CYCLES == 2 for (r, _), f in zip(rises, falls))
    assert all(rises[i + 1][0] - falls[i] == delay + 3 for i in range(steps - 1))
    assert all(rises[i + 1][0] - rises[i][0] == ps.pulse_cycles(delay) == delay + 5
               for i in range(steps - 1))
    assert sm.tx_stalled() and sm.stall_clock == ps.train_cycles(steps, delay)
    assert ps.train_cycles(steps, delay) == 4 + steps * (delay + 5)
    assert dir_changes == []                                        # forward: DIR stays low


def test_fast_forward_of_the_fake_is_cycle_exact_SR_CORE_7(dev):
    traces = []
    for fast in (False, True):
        stepper = new_stepper(dev, fast_forward=fast)
        for steps in (7, -3, 2):
            stepper.move(steps, TICK_MS)
        fake_rp2.advance_us(TICK_MS * 1000)
        traces.append((stepper.sm.trace, stepper.sm.stall_clock, stepper.sm.clock()))
    assert traces[0] == traces[1]


def test_direction_travels_with_its_pulses_forward_and_reverse_SR_CORE_4(dev):
    """Forward, reverse (back-off), forward queued at once: DIR flips only between trains,
    DIR_SETUP_CYCLES before the first edge of its own train, never under an earlier one."""
    ps, board = dev.ps, dev.board
    stepper = new_stepper(dev)
    moves = (3, -2, 1, -BACKOFF_MAX_STEPS, 4)
    for steps in moves[:4]:                           # 8 words: the joined FIFO is full
        stepper.move(steps, TICK_MS)
    fake_rp2.advance_us(4 * TICK_MS * 1000)
    stepper.move(moves[4], TICK_MS)
    fake_rp2.advance_us(TICK_MS * 1000)
    assert stepper.overruns() == 0
    rises, falls, dir_changes = pulses(stepper.sm, board.PIN_STEP, board.PIN_DIR)
    expected = [0 if n > 0 else 1 for n in moves for _ in range(abs(n))]
    assert [level for _, level in rises] == expected
    firsts, start = [], 0
    for n in moves:
        firsts.append(rises[start][0])
        start += abs(n)
    # one DIR change before each train that reverses it, exactly DIR_SETUP_CYCLES ahead
    changed = [firsts[i] for i in range(len(moves))
               if (moves[i] < 0) != (moves[i - 1] < 0 if i else False)]
    assert [t + ps.DIR_SETUP_CYCLES for t in dir_changes] == changed
    assert ps.DIR_SETUP_CYCLES == 3
    for t in dir_changes:                             # after the earlier train's last pulse
        last_rise = max(r for r, _ in rises if r < t)
        assert t - last_rise >= ps.STEP_HIGH_CYCLES + 3 + 1     # high, low (d + 3), pull
    assert stepper.steps_issued() == sum(moves)       # net: forward minus reverse


def test_enable_line_is_independent_of_the_pio_SR_CORE_7(dev):
    board = dev.board
    fake_rp2.reset()
    stepper = dev.backend.PioStepper()
    sm = stepper.sm
    assert stepper.en.value() == 1                    # active low: disabled at boot
    stepper.move(5, TICK_MS)                          # dropped while disabled
    assert sm.tx_fifo() == 0 and stepper.steps_issued() == 0 and stepper.overruns() == 0
    stepper.enable(True)
    assert stepper.en.value() == 0
    stepper.move(5, TICK_MS)
    fake_rp2.advance_us(2000)
    stepper.enable(False)                             # EN cut mid-train: the PIO is not touched
    assert stepper.en.value() == 1
    fake_rp2.advance_us(TICK_MS * 1000)
    rises, _, _ = pulses(sm, board.PIN_STEP, board.PIN_DIR)
    assert len(rises) == 5 and stepper.steps_issued() == 5
    en_bit = 1 << board.PIN_EN
    assert not sm.pin_directions() & en_bit
    assert not sm.initial_pins & en_bit and all(not pins & en_bit for _, pins in sm.trace)


# ---- every rate fits its tick ----------------------------------------------------------

def test_every_programmable_rate_fits_the_tick_with_margin_SR_TH_2_SR_CORE_7(dev):
    """Pure arithmetic over all 5000 rates (floor and ceil tick) and every back-off size."""
    ps = dev.ps
    fits = {}

    def train(n):
        if n not in fits:
            delay = ps.delay_for(n, TICK_MS, dev.freq_hz)
            assert delay >= 0, (n, delay)
            fits[n] = ps.train_cycles(n, delay)
        return fits[n]

    worst = 0
    for rate in RATES_UL_PER_H:
        for n in per_tick_bounds(rate):
            if n:
                worst = max(worst, train(n))
    for n in range(1, BACKOFF_MAX_STEPS + 1):
        worst = max(worst, train(n))
    assert worst <= dev.budget_cycles == 9000 < dev.tick_cycles
    assert max(per_tick_bounds(RATES_UL_PER_H[-1])) == 89
    print("worst tick fill %.2f %% (%d of %d cycles)"
          % (100.0 * worst / dev.tick_cycles, worst, dev.tick_cycles))


def test_stepper_words_for_every_tick_size_fit_the_tick_SR_TH_2_SR_CORE_4_7(dev):
    """What PioStepper.move really queues, for every count a tick or a back-off can carry."""
    ps = dev.ps
    counts = set()
    for rate in RATES_UL_PER_H:
        counts.update(n for n in per_tick_bounds(rate) if n)
    counts.update(-n for n in range(1, BACKOFF_MAX_STEPS + 1))
    for n in sorted(counts):
        stepper = new_stepper(dev)
        stepper.move(n, TICK_MS)
        words = stepper.sm.queued_words()
        assert len(words) == 2 and stepper.overruns() == 0
        count_dir, delay = words
        assert count_dir == (abs(n) - 1) << 1 | (n < 0)
        assert ps.train_cycles(abs(n), delay) <= dev.budget_cycles


def _sampled_rates():
    rng = random.Random(5)
    fixed = [100, 1000, 4700, 10000, 99900, 250000, 333300, 499900, 500000]
    return fixed + rng.sample(RATES_UL_PER_H, 4)


@pytest.mark.parametrize("rate_ul_per_h", _sampled_rates())
def test_each_tick_train_ends_before_the_next_tick_in_the_emulator_SR_CORE_7(dev,
                                                                              rate_ul_per_h):
    """Ticks driven through PioStepper and the emulated PIO: the previous train is over and
    the FIFO empty at every IRQ, each train ends within 90 % of its tick."""
    board = dev.board
    lo, hi = per_tick_bounds(rate_ul_per_h)
    num, den = rate_ul_per_h * 1000000 * TICK_MS, 3600000 * USTEP_VOLUME_PL
    ticks = [hi, lo] + [((k + 1) * num) // den - (k * num) // den for k in range(8)]
    stepper = new_stepper(dev)
    sm = stepper.sm
    for k, steps in enumerate(ticks):
        tick_start = k * dev.tick_cycles
        assert sm.clock() == tick_start
        assert sm.tx_fifo() == 0 and sm.tx_stalled(), "tick %d: previous train still running" % k
        before = len(pulses(sm, board.PIN_STEP, board.PIN_DIR)[0])
        stepper.move(steps, TICK_MS)                  # as the 10 ms hard IRQ does
        fake_rp2.advance_us(TICK_MS * 1000)
        rises = pulses(sm, board.PIN_STEP, board.PIN_DIR)[0][before:]
        assert len(rises) == steps
        if steps:
            assert sm.tx_stalled(), "tick %d: %d steps still running at the next IRQ" % (k, steps)
            assert sm.stall_clock - tick_start <= dev.budget_cycles, (
                "tick %d: %d steps took %d of %d cycles"
                % (k, steps, sm.stall_clock - tick_start, dev.tick_cycles))
    assert stepper.steps_issued() == sum(ticks)
    assert stepper.overruns() == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(0, 89), st.integers(-BACKOFF_MAX_STEPS, -1)),
                          st.integers(-1000, 1000)),
                min_size=1, max_size=10))
def test_signed_moves_with_irq_jitter_never_block_and_land_where_commanded_SR_CORE_4_7(
        dev, ticks):
    """Forward ticks and back-offs, each IRQ up to 1 ms early or late: no put ever finds the
    FIFO full, nothing is refused, and the pulses add up to steps_issued()."""
    board = dev.board
    stepper = new_stepper(dev)
    now_us = 0
    for k, (steps, jitter_us) in enumerate(ticks):
        irq_us = 1000 + k * TICK_MS * 1000 + jitter_us
        fake_rp2.advance_us(irq_us - now_us)
        now_us = irq_us
        stepper.move(steps, TICK_MS)
    fake_rp2.advance_us(2 * TICK_MS * 1000)
    assert stepper.overruns() == 0
    assert stepper.sm.tx_fifo() == 0 and stepper.sm.tx_stalled()
    rises = pulses(stepper.sm, board.PIN_STEP, board.PIN_DIR)[0]
    assert len(rises) == sum(abs(n) for n, _ in ticks)
    assert sum(-1 if level else 1 for _, level in rises) == stepper.steps_issued() == sum(
        n for n, _ in ticks)


def test_a_stuck_step_generator_is_counted_after_100_ms_never_blocking_SR_CORE_7(dev):
    """Never block the IRQ: with no room for both words the steps are carried; a backlog
    still there after CARRY_LIMIT_MOVES consecutive ticks is an overrun (motor fault)."""
    import hal.rp2040 as backend
    stepper = new_stepper(dev)
    stepper.sm.active(0)                              # a stuck SM: nothing drains
    for _ in range(4):
        stepper.move(10, TICK_MS)
    assert stepper.sm.tx_fifo() == 8 and stepper.overruns() == 0
    for _ in range(backend.CARRY_LIMIT_MOVES):        # would block on the port: carried
        stepper.move(10, TICK_MS)
    assert stepper.overruns() == 0 and stepper.steps_issued() == 40
    stepper.move(10, TICK_MS)                         # 110 ms without room: a fault
    assert stepper.overruns() == 1 and stepper.carry == 10 * (backend.CARRY_LIMIT_MOVES + 1)


def test_more_pulses_than_fit_are_split_over_ticks_not_refused_SR_CORE_7(dev):
    stepper = new_stepper(dev)
    most = dev.ps.max_pulses(TICK_MS, dev.board.STEP_PIO_FREQ_HZ)
    stepper.move(most + 7, TICK_MS)
    assert stepper.steps_issued() == most and stepper.carry == 7
    assert dev.ps.train_cycles(most, 0) <= dev.budget_cycles
    fake_rp2.advance_us(TICK_MS * 1000)
    stepper.move(0, TICK_MS)
    assert stepper.steps_issued() == most + 7 and stepper.overruns() == 0


def test_late_ticks_back_to_back_after_a_flash_erase_lose_no_step_SR_CORE_7(dev):
    """IRQs off for 60 ms (a flash sector erase), then the soft timer fires the six missed
    ticks at once at 500 mL/h: the FIFO fills, the rest is carried, nothing is refused,
    and every commanded step comes out as a pulse."""
    board = dev.board
    stepper = new_stepper(dev)
    steps_per_tick = 89                               # 500 mL/h
    fake_rp2.advance_us(1000)
    stepper.move(steps_per_tick, TICK_MS)
    fake_rp2.advance_us(60 * 1000)                    # IRQs masked: no tick
    for _ in range(6):                                # the missed ticks, back to back
        stepper.move(steps_per_tick, TICK_MS)
    for _ in range(6):                                # then on time again
        fake_rp2.advance_us(TICK_MS * 1000)
        stepper.move(steps_per_tick, TICK_MS)
    fake_rp2.advance_us(8 * TICK_MS * 1000)
    stepper.move(0, TICK_MS)
    fake_rp2.advance_us(4 * TICK_MS * 1000)
    assert stepper.overruns() == 0 and stepper.carry == 0
    rises = pulses(stepper.sm, board.PIN_STEP, board.PIN_DIR)[0]
    assert len(rises) == stepper.steps_issued() == 13 * steps_per_tick


# ---- the defect this replaces ----------------------------------------------------------

def test_previous_program_overran_the_tick_and_blocked_the_irq_SR_CORE_7():
    """The program and move() before the fix (git history), run in the emulator at
    500 mL/h (89 steps): each pulse costs 2*half + 7 cycles, not the half*2 + 6 assumed,
    so a tick's train lasts 10060 of 10000 cycles, the backlog grows 60 cycles per tick,
    and once two moves wait in the 4-word FIFO the IRQ's put blocks."""
    PIO = fake_rp2.PIO

    @fake_rp2.asm_pio(set_init=PIO.OUT_LOW)
    def previous_step_train():
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

    def previous_words(steps, period_ms=TICK_MS, freq_hz=1000000):
        cycles = period_ms * (freq_hz // 1000) // steps
        half = (cycles - 6) // 2
        return steps - 1, (half if half > 0 else 1)

    steps = 89
    count, half = previous_words(steps)
    assert half == 53 and steps * (half * 2 + 6) <= 10000        # what was assumed
    fake_rp2.reset()
    sm = fake_rp2.StateMachine(0, previous_step_train, freq=1000000, set_base=2)
    sm.active(1)
    sm.put(count)
    sm.put(half)
    fake_rp2.advance_us(2 * TICK_MS * 1000)
    rises = [c for c, pins in sm.trace if pins & 4]
    assert rises[1] - rises[0] == 2 * half + 7                  # what the port really does
    assert sm.stall_clock == steps * (2 * half + 7) + 3 == 10060     # > one 10 ms tick
    # one move per tick: each train starts 60 cycles later than the one before
    fake_rp2.reset()
    sm = fake_rp2.StateMachine(0, previous_step_train, freq=1000000, set_base=2)
    sm.active(1)
    for _ in range(5):
        sm.put(count)
        sm.put(half)
        fake_rp2.advance_us(TICK_MS * 1000)
    rises = [c for c, pins in sm.trace if pins & 4]
    lateness = [rises[k * steps] - k * 10000 for k in range(5)]
    assert lateness == [3, 63, 123, 183, 243]
    # ~330 ticks on, two moves wait behind the running train: the FIFO is full at the IRQ
    fake_rp2.reset()
    sm = fake_rp2.StateMachine(0, previous_step_train, freq=1000000, set_base=2)
    sm.active(1)
    for _ in range(3):
        sm.put(count)
        sm.put(half)
        fake_rp2.advance_us(5)
    fake_rp2.advance_us(TICK_MS * 1000 - 15)
    assert not sm.tx_stalled() and sm.tx_fifo() == 4
    with pytest.raises(fake_rp2.BlockedInIrq):
        sm.put(count)
