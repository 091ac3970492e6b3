"""Fake of MicroPython's ``rp2`` module as the **rp2 port** behaves (CPython device tests).

Owns three things, each mirroring a named source of the MicroPython tree
(v1.2x, ``ports/rp2``) and the RP2040 datasheet:

* ``asm_pio`` -- the PIO assembler DSL of ``ports/rp2/modules/rp2.py``.  The
  decorated function runs twice (pass 0 finds labels and side-set use, pass 1
  emits) with only the DSL names visible, as the port's decorator does by
  swapping the function's globals; it assembles into the 16-bit opcodes the
  RP2040 executes (datasheet section 3.4, "Instruction Set"; own encoder) and
  returns the port's program list ``[opcodes, offset_pio0, offset_pio1,
  execctrl, shiftctrl, out_init, set_init, sideset_init]`` (the ``PROG_*``
  layout of ``ports/rp2/rp2_pio.c``).  Unlike the port it rejects operands an
  instruction cannot encode instead of emitting a wrong opcode.
* ``PIO`` -- the constants of ``rp2_pio_locals_dict_table`` in ``rp2_pio.c``.
* ``StateMachine`` -- ``rp2_state_machine_*`` in ``rp2_pio.c``.  The program
  runs, cycle by cycle, in ``pioemu`` (rp2040-pio-emulator) at the PIO clock the
  port derives from ``freq`` (``calc_pio_clock_dividers``, 125 MHz clk_sys), in
  simulated time: nothing runs until a test calls ``advance_us``/``advance_ns``.
  ``put`` on a full TX FIFO busy-waits on the port (``rp2_state_machine_put``:
  ``while (pio_sm_is_tx_fifo_full(...))``), which inside a hard IRQ stalls the
  whole application; here it raises ``BlockedInIrq`` so the test fails loudly
  instead of hanging (``get`` on an empty RX FIFO likewise).  ``tx_fifo()`` is
  the queued word count (``pio_sm_get_tx_fifo_level``), 8 deep with
  ``fifo_join=PIO.JOIN_TX``.  ``StateMachine(id, ...)`` returns the one object of
  that id, re-initialised, as the port's static ``rp2_state_machine_obj`` table.

Fake-only inspection (not on the port): ``clock()`` PIO cycles run, ``pins()``
the GPIO levels the SM drives, ``trace`` the pin changes as ``(cycle, pins)``
from ``initial_pins``, ``queued_words()`` the TX FIFO contents,
``tx_stalled()`` (FDEBUG.TXSTALL: waiting on ``pull`` with an empty FIFO) and
``stall_clock`` (the cycle that wait began).  ``fast_forward`` (default on)
jumps over a ``jmp x_dec``/``y_dec`` loop onto itself with no delay and over a
stall on an empty FIFO -- both change nothing but the clock and the counter, so
the result is cycle-exact (checked against plain pioemu by the tests).
"""
import types
from array import array
from dataclasses import replace

from pioemu import State, emulate
from pioemu.shift_register import ShiftRegister

SYS_CLK_HZ = 125000000          # clk_sys of the rp2 port on an RP2040


class PIOASMError(Exception):
    pass


class BlockedInIrq(Exception):
    """``put``/``get`` would busy-wait on the real port (fatal inside a hard IRQ)."""


class PIO:
    """``rp2.PIO``: constants of ``rp2_pio.c``; the methods are not modelled."""
    IN_LOW = 0
    IN_HIGH = 1
    OUT_LOW = 2
    OUT_HIGH = 3
    SHIFT_LEFT = 0
    SHIFT_RIGHT = 1
    JOIN_NONE = 0
    JOIN_TX = 1
    JOIN_RX = 2
    IRQ_SM0 = 0x100
    IRQ_SM1 = 0x200
    IRQ_SM2 = 0x400
    IRQ_SM3 = 0x800

    def __init__(self, id):
        if id not in (0, 1):
            raise ValueError("invalid PIO")
        self.id = id


# ---------------------------------------------------------------------------------------
# Assembler (RP2040 datasheet 3.4: 3-bit major opcode, 5-bit delay/side-set field at
# bits 12..8, instruction-specific low byte)

class _Name:
    """A DSL operand (``x``, ``osr``, ``block``...), with a mov operation (invert/reverse)."""

    def __init__(self, name, mov_op=0):
        self.name = name
        self.mov_op = mov_op

    def __repr__(self):
        return self.name


_OPERANDS = ("gpio", "pins", "x", "y", "null", "pindirs", "pc", "status", "isr", "osr",
             "exec", "pin", "not_x", "x_dec", "not_y", "y_dec", "x_not_y", "not_osre",
             "block", "noblock", "iffull", "ifempty", "clear")

_JMP_COND = {"not_x": 1, "x_dec": 2, "not_y": 3, "y_dec": 4, "x_not_y": 5, "pin": 6,
             "not_osre": 7}
_WAIT_SRC = {"gpio": 0, "pin": 1, "irq": 2}
_IN_SRC = {"pins": 0, "x": 1, "y": 2, "null": 3, "isr": 6, "osr": 7}
_OUT_DEST = {"pins": 0, "x": 1, "y": 2, "null": 3, "pindirs": 4, "pc": 5, "isr": 6,
             "exec": 7}
_MOV_DEST = {"pins": 0, "x": 1, "y": 2, "exec": 4, "pc": 5, "isr": 6, "osr": 7}
_MOV_SRC = {"pins": 0, "x": 1, "y": 2, "null": 3, "status": 5, "isr": 6, "osr": 7}
_SET_DEST = {"pins": 0, "x": 1, "y": 2, "pindirs": 4}

_MAJOR_JMP, _MAJOR_WAIT, _MAJOR_IN, _MAJOR_OUT = 0x0000, 0x2000, 0x4000, 0x6000
_MAJOR_PUSHPULL, _MAJOR_MOV, _MAJOR_IRQ, _MAJOR_SET = 0x8000, 0xA000, 0xC000, 0xE000


def _field(table, operand, what):
    name = operand.name if isinstance(operand, _Name) else None
    if name not in table:
        raise PIOASMError("%s: invalid operand %r" % (what, operand))
    return table[name]


def _bit_count(n, what):
    if not isinstance(n, int) or not 1 <= n <= 32:
        raise PIOASMError("%s: bit count %r not in 1..32" % (what, n))
    return n & 0x1F            # 32 is encoded as 0


class _Instr:
    """Handle on one emitted instruction: ``.side(v)`` and ``[delay]`` fill bits 12..8."""

    def __init__(self, asm, index):
        self.asm = asm
        self.index = index

    def side(self, value):
        self.asm._side(self.index, value)
        return self

    def __getitem__(self, delay):
        self.asm._delay(self.index, delay)
        return self


class _Assembler:
    def __init__(self, out_init=None, set_init=None, sideset_init=None, side_pindir=False,
                 in_shiftdir=PIO.SHIFT_LEFT, out_shiftdir=PIO.SHIFT_LEFT, autopush=False,
                 autopull=False, push_thresh=32, pull_thresh=32, fifo_join=PIO.JOIN_NONE):
        self.out_init = out_init
        self.set_init = set_init
        self.sideset_init = sideset_init
        if sideset_init is None:
            self.sideset_bits = 0
        elif isinstance(sideset_init, int):
            self.sideset_bits = 1
        else:
            self.sideset_bits = len(sideset_init)
        self.side_pindir = bool(side_pindir)
        # SHIFTCTRL (datasheet 3.7, SM0_SHIFTCTRL): FJOIN_RX 31, FJOIN_TX 30, PULL_THRESH 29:25,
        # PUSH_THRESH 24:20, OUT_SHIFTDIR 19, IN_SHIFTDIR 18, AUTOPULL 17, AUTOPUSH 16
        self.shiftctrl = ((fifo_join & 3) << 30 | (pull_thresh & 0x1F) << 25
                          | (push_thresh & 0x1F) << 20 | (out_shiftdir & 1) << 19
                          | (in_shiftdir & 1) << 18 | int(bool(autopull)) << 17
                          | int(bool(autopush)) << 16)
        self.labels = {}
        self.wrap_target_at = None
        self.wrap_at = None
        self.sideset_opt = False
        self.pass_ = 0
        self.words = []
        self.sided = set()

    # -- passes
    def start_pass(self, pass_):
        if pass_ == 1:
            n = len(self.words)
            if n == 0:
                raise PIOASMError("empty program")
            if n > 32:
                raise PIOASMError("program of %d instructions, the PIO holds 32" % n)
            if self.sideset_bits:
                self.sideset_opt = len(self.sided) != n
            self.sided = set()
        self.pass_ = pass_
        self.words = []

    def field_bits(self):
        """Side-set bits including the enable bit, and the largest delay."""
        bits = self.sideset_bits + (1 if self.sideset_opt else 0)
        return bits, (1 << (5 - bits)) - 1

    def _emit(self, word, label=None):
        if label is not None:
            if isinstance(label, int):
                target = label
            elif self.pass_ == 0:
                target = 0
            elif label in self.labels:
                target = self.labels[label]
            else:
                raise PIOASMError("unknown label %r" % (label,))
            if not 0 <= target < 32:
                raise PIOASMError("jump target %r out of range" % (target,))
            word |= target
        self.words.append(word)
        return _Instr(self, len(self.words) - 1)

    def _side(self, index, value):
        self.sided.add(index)
        if self.pass_ == 0:
            return
        if not self.sideset_bits:
            raise PIOASMError("side() without sideset_init")
        if not 0 <= value < (1 << self.sideset_bits):
            raise PIOASMError("side-set value %r too large" % (value,))
        bits, _ = self.field_bits()
        word = self.words[index] | value << (13 - bits)
        if self.sideset_opt:
            word |= 1 << 12
        self.words[index] = word

    def _delay(self, index, delay):
        if self.pass_ == 0:
            return
        _, delay_max = self.field_bits()
        if not isinstance(delay, int) or not 0 <= delay <= delay_max:
            raise PIOASMError("delay %r not in 0..%d" % (delay, delay_max))
        self.words[index] |= delay << 8

    # -- directives
    def label(self, name):
        if self.pass_ == 0:
            if name in self.labels:
                raise PIOASMError("duplicate label %r" % (name,))
            self.labels[name] = len(self.words)

    def wrap_target(self):
        self.wrap_target_at = len(self.words)

    def wrap(self):
        if not self.words:
            raise PIOASMError("wrap() before any instruction")
        self.wrap_at = len(self.words) - 1

    # -- instructions
    def word(self, instr, label=None):
        return self._emit(instr & 0xFFFF, label)

    def nop(self):
        return self.mov(_Name("y"), _Name("y"))

    def jmp(self, cond, label=None):
        if label is None:
            cond, label = None, cond
        code = 0 if cond is None else _field(_JMP_COND, cond, "jmp")
        return self._emit(_MAJOR_JMP | code << 5, label)

    def wait(self, polarity, src, index):
        source = "irq" if src == self.irq else src
        if isinstance(source, _Name):
            source = source.name
        if source not in _WAIT_SRC:
            raise PIOASMError("wait: invalid source %r" % (src,))
        return self._emit(_MAJOR_WAIT | (polarity & 1) << 7 | _WAIT_SRC[source] << 5
                          | (index & 0x1F))

    def in_(self, src, n):
        return self._emit(_MAJOR_IN | _field(_IN_SRC, src, "in_") << 5 | _bit_count(n, "in_"))

    def out(self, dest, n):
        return self._emit(_MAJOR_OUT | _field(_OUT_DEST, dest, "out") << 5
                          | _bit_count(n, "out"))

    def _flags(self, flags, what, allowed):
        names = set()
        for flag in flags:
            if not isinstance(flag, _Name) or flag.name not in allowed:
                raise PIOASMError("%s: invalid flag %r" % (what, flag))
            names.add(flag.name)
        if "block" in names and "noblock" in names:
            raise PIOASMError("%s: block and noblock" % what)
        return names

    def push(self, *flags):
        names = self._flags(flags, "push", ("iffull", "block", "noblock"))
        block = 0 if "noblock" in names else 1
        return self._emit(_MAJOR_PUSHPULL | ("iffull" in names) << 6 | block << 5)

    def pull(self, *flags):
        names = self._flags(flags, "pull", ("ifempty", "block", "noblock"))
        block = 0 if "noblock" in names else 1
        return self._emit(_MAJOR_PUSHPULL | 1 << 7 | ("ifempty" in names) << 6 | block << 5)

    def mov(self, dest, src):
        op = src.mov_op if isinstance(src, _Name) else 0
        return self._emit(_MAJOR_MOV | _field(_MOV_DEST, dest, "mov") << 5 | op << 3
                          | _field(_MOV_SRC, src, "mov"))

    def irq(self, mod, index=None):
        flags = ()
        if index is None:
            index = mod
        else:
            flags = mod if isinstance(mod, tuple) else (mod,)
        names = self._flags(flags, "irq", ("block", "clear"))
        return self._emit(_MAJOR_IRQ | ("clear" in names) << 6 | ("block" in names) << 5
                          | (index & 0x1F))

    def set(self, dest, data):
        if not isinstance(data, int) or not 0 <= data <= 31:
            raise PIOASMError("set: data %r not in 0..31" % (data,))
        return self._emit(_MAJOR_SET | _field(_SET_DEST, dest, "set") << 5 | data)

    # -- result
    def program(self):
        n = len(self.words)
        top = n - 1 if self.wrap_at is None else self.wrap_at
        bottom = 0 if self.wrap_target_at is None else self.wrap_target_at
        # EXECCTRL: SIDE_EN 30, SIDE_PINDIR 29, WRAP_TOP 16:12, WRAP_BOTTOM 11:7
        execctrl = (int(self.sideset_opt) << 30 | int(self.side_pindir) << 29
                    | top << 12 | bottom << 7)
        return [array("H", self.words), -1, -1, execctrl, self.shiftctrl, self.out_init,
                self.set_init, self.sideset_init]

    def namespace(self):
        ns = {name: _Name(name) for name in _OPERANDS}
        ns["invert"] = lambda src: _Name(src.name, 1)
        ns["reverse"] = lambda src: _Name(src.name, 2)
        ns["rel"] = lambda index: index | 0x10
        for name in ("label", "wrap_target", "wrap", "word", "nop", "jmp", "wait", "in_",
                     "out", "push", "pull", "mov", "irq", "set"):
            ns[name] = getattr(self, name)
        ns["__builtins__"] = __builtins__
        return ns


def asm_pio(**kw):
    """``@rp2.asm_pio(...)``: assemble the decorated DSL function into a program list."""
    asm = _Assembler(**kw)

    def assemble(f):
        body = types.FunctionType(f.__code__, asm.namespace(), f.__name__, f.__defaults__,
                                  f.__closure__)
        asm.start_pass(0)
        body()
        asm.start_pass(1)
        body()
        return asm.program()

    return assemble


# ---------------------------------------------------------------------------------------
# State machines in simulated time

_now_ns = [0]
_machines = {}


def reset():
    """Forget every state machine and restart simulated time at 0 (between tests)."""
    _machines.clear()
    _now_ns[0] = 0


def now_ns():
    return _now_ns[0]


def advance_ns(ns):
    """Let ``ns`` nanoseconds pass: every active state machine runs its program."""
    if ns < 0:
        raise ValueError("time runs forwards")
    _now_ns[0] += ns
    for sm in list(_machines.values()):
        if sm._enabled:
            sm._run(sm._target_clock())


def advance_us(us):
    advance_ns(us * 1000)


def _gpio(pin):
    """``mp_hal_get_pin_obj``: a Pin or a GPIO number."""
    if pin is None or isinstance(pin, int):
        return pin
    for attr in ("gpio", "id", "pin"):
        value = getattr(pin, attr, None)
        if isinstance(value, int):
            return value
    raise TypeError("expecting a Pin")


def _pin_config(init):
    """``asm_pio_get_pins``: (count, pindirs, pinvals) of an out/set/sideset init."""
    if init is None:
        return 0, 0, 0
    items = (init,) if isinstance(init, int) else tuple(init)
    dirs = vals = 0
    for i, value in enumerate(items):
        dirs |= (value >> 1) << i
        vals |= (value & 1) << i
    return len(items), dirs, vals


def _clock_divider_256(freq):
    """``calc_pio_clock_dividers``: clk_sys / freq in 1/256ths, the nearer of the two."""
    lo = SYS_CLK_HZ * 256 // freq
    hi = lo + 1
    if lo < 256 or hi >= 65536 * 256:
        raise ValueError("freq out of range")
    return lo if (SYS_CLK_HZ * 256 - freq * lo) <= (freq * hi - SYS_CLK_HZ * 256) else hi


class StateMachine:
    def __new__(cls, id, *args, **kw):
        if not 0 <= id < 8:
            raise ValueError("invalid StateMachine")
        sm = _machines.get(id)
        if sm is None:
            sm = object.__new__(cls)
            sm.id = id
            sm._enabled = False
            sm._ops = None
            sm.fast_forward = True
            _machines[id] = sm
        return sm

    def __init__(self, id, prog=None, freq=-1, **kw):
        if prog is not None:
            self.init(prog, freq, **kw)

    def init(self, prog, freq=-1, *, in_base=None, out_base=None, set_base=None, jmp_pin=None,
             sideset_base=None, in_shiftdir=None, out_shiftdir=None, push_thresh=None,
             pull_thresh=None, clkdiv_int=-1, clkdiv_frac=0):
        """``rp2_state_machine_init_helper``: reset (disabled) and configure."""
        ops, execctrl, shiftctrl = list(prog[0]), prog[3], prog[4]
        if clkdiv_int > 0:
            div256 = clkdiv_int * 256 + clkdiv_frac
        elif freq < 0:
            div256 = 256
        elif freq == 0:
            raise NotImplementedError("clkdiv 0 (65536) not modelled")
        else:
            div256 = _clock_divider_256(freq)
        for value, bits, lsb in ((in_shiftdir, 1, 18), (out_shiftdir, 1, 19),
                                 (push_thresh, 0x1F, 20), (pull_thresh, 0x1F, 25)):
            if value is not None:       # asm_pio_override_shiftctrl
                shiftctrl = (shiftctrl & ~(bits << lsb)) | (value & bits) << lsb
        if in_base is not None:
            raise NotImplementedError("pioemu reads IN pins from GPIO 0: in_base not modelled")
        if execctrl >> 30 & 1 or execctrl >> 29 & 1:
            raise NotImplementedError("optional side-set / side_pindir not modelled by pioemu")

        pins = dirs = 0
        cfg = {}
        for kind, init, base in (("out", prog[5], out_base), ("set", prog[6], set_base),
                                 ("side_set", prog[7], sideset_base)):
            count, pindirs, pinvals = _pin_config(init)
            gpio = _gpio(base)
            # sm_config_set_*_pins only when a base is given; the default config has count 0
            cfg[kind + "_base"] = 0 if gpio is None else gpio
            cfg[kind + "_count"] = 0 if gpio is None else count
            if gpio is not None:        # asm_pio_init_gpio
                mask = ((1 << count) - 1) << gpio
                pins = (pins & ~mask) | (pinvals << gpio)
                dirs = (dirs & ~mask) | (pindirs << gpio)
        pull_threshold = (shiftctrl >> 25) & 0x1F or 32
        push_threshold = (shiftctrl >> 20) & 0x1F or 32
        self._cfg = dict(cfg, shift_osr_right=bool(shiftctrl >> 19 & 1),
                         shift_isr_right=bool(shiftctrl >> 18 & 1),
                         auto_pull=bool(shiftctrl >> 17 & 1), auto_push=bool(shiftctrl >> 16 & 1),
                         pull_threshold=pull_threshold, push_threshold=push_threshold,
                         jmp_pin=_gpio(jmp_pin) or 0,
                         wrap_target=(execctrl >> 7) & 0x1F, wrap_top=(execctrl >> 12) & 0x1F)
        join = (shiftctrl >> 30) & 3
        self.tx_depth = {0: 4, 1: 8, 2: 0}[join]
        self.rx_depth = {0: 4, 1: 0, 2: 8}[join]
        self._ops = ops
        self._div256 = div256
        self.freq_hz = SYS_CLK_HZ * 256 // div256
        # pio_sm_init: disabled, FIFOs cleared, PC at the program, OSR empty
        self._state = State(pin_values=pins, pin_directions=dirs)
        self._enabled = False
        self.initial_pins = pins
        self.trace = []
        self.stall_clock = None

    # -- port API
    def active(self, value=None):
        if value is not None:
            enable = bool(value)
            if enable and not self._enabled:
                self._t0_ns = _now_ns[0]
                self._t0_clock = self._state.clock
            self._enabled = enable
        return self._enabled

    def restart(self):
        """``pio_sm_restart`` + jump to the program start: FIFOs and X/Y are kept."""
        self._state = replace(self._state, program_counter=0,
                              input_shift_register=ShiftRegister(0, 0),
                              output_shift_register=ShiftRegister(0, 32))

    def put(self, value, shift=0):
        if isinstance(value, int):
            words = [value]
        elif isinstance(value, array) and value.typecode in "BHIL":
            words = list(value)
        elif isinstance(value, (bytes, bytearray)):
            words = list(value)
        else:
            raise ValueError("unsupported buffer type")
        for word in words:
            if len(self._state.transmit_fifo) >= self.tx_depth:
                raise BlockedInIrq("StateMachine(%d).put: TX FIFO full (%d words): the port "
                                   "busy-waits here (rp2_state_machine_put)"
                                   % (self.id, self.tx_depth))
            fifo = self._state.transmit_fifo.copy()
            fifo.append((word << shift) & 0xFFFFFFFF)     # mp_obj_get_int_truncated
            self._state = replace(self._state, transmit_fifo=fifo)

    def get(self, buf=None, shift=0):
        if buf is not None:
            raise NotImplementedError("get into a buffer")
        if not self._state.receive_fifo:
            raise BlockedInIrq("StateMachine(%d).get: RX FIFO empty: the port busy-waits here"
                               % self.id)
        fifo = self._state.receive_fifo.copy()
        value = fifo.popleft()
        self._state = replace(self._state, receive_fifo=fifo)
        return value >> shift

    def tx_fifo(self):
        return len(self._state.transmit_fifo)

    def rx_fifo(self):
        return len(self._state.receive_fifo)

    def exec(self, instr):
        raise NotImplementedError("StateMachine.exec is not modelled")

    def irq(self, handler=None, trigger=0, hard=False):
        raise NotImplementedError("StateMachine.irq is not modelled")

    # -- fake-only inspection
    def clock(self):
        """PIO cycles run since init."""
        return self._state.clock

    def pins(self):
        """GPIO levels driven by this state machine (bit n = GPIO n)."""
        return self._state.pin_values

    def pin_directions(self):
        return self._state.pin_directions

    def queued_words(self):
        """The words waiting in the TX FIFO, oldest first."""
        return list(self._state.transmit_fifo)

    def tx_stalled(self):
        """Waiting on a blocking ``pull`` with an empty TX FIFO (FDEBUG.TXSTALL)."""
        return self._stalled_on_pull(self._ops[self._state.program_counter], self._state)

    def run_cycles(self, n):
        """Run ``n`` PIO cycles whatever the simulated time (program-level tests)."""
        self._run(self._state.clock + n)

    # -- engine
    def _target_clock(self):
        elapsed_ns = _now_ns[0] - self._t0_ns
        return self._t0_clock + elapsed_ns * SYS_CLK_HZ * 256 // (self._div256 * 1000000000)

    @staticmethod
    def _stalled_on_pull(op, state):
        # pull block without ifempty (0x80A0 | delay/side bits) on an empty FIFO
        return (op & 0xE0E0) == 0x80A0 and not state.transmit_fifo

    @staticmethod
    def _self_loop_register(op, pc):
        """'x' or 'y' if ``op`` is ``jmp x_dec/y_dec`` onto itself with no delay/side-set."""
        if op >> 13 != 0 or (op >> 8) & 0x1F or (op & 0x1F) != pc:
            return None
        cond = (op >> 5) & 7
        return "x" if cond == 2 else "y" if cond == 4 else None

    def _skippable(self, op, state):
        if self._stalled_on_pull(op, state):
            return True
        if not self.fast_forward:
            return False
        reg = self._self_loop_register(op, state.program_counter)
        if reg is None:
            return False
        return (state.x_register if reg == "x" else state.y_register) > 0

    def _skip(self, op, state, target):
        """Advance a stall or a tight decrement loop in one step (same end state)."""
        if self._stalled_on_pull(op, state):
            if self.stall_clock is None:
                self.stall_clock = state.clock
            return replace(state, clock=target)
        reg = self._self_loop_register(op, state.program_counter)
        value = state.x_register if reg == "x" else state.y_register
        n = min(value, target - state.clock)       # taken iterations: 1 cycle, reg -= 1
        if reg == "x":
            return replace(state, clock=state.clock + n, x_register=value - n)
        return replace(state, clock=state.clock + n, y_register=value - n)

    def _run(self, target):
        state = self._state
        ops = self._ops
        while state.clock < target:
            op = ops[state.program_counter]
            if self._skippable(op, state):
                state = self._skip(op, state, target)
                continue
            self.stall_clock = None

            def stop(op, s, target=target):
                return s.clock >= target or self._skippable(op, s)

            start = state.clock
            for before, after in emulate(ops, stop_when=stop, initial_state=state, **self._cfg):
                if after.pin_values != before.pin_values:
                    self.trace.append((before.clock, after.pin_values))
                state = after
            if state.clock == start:
                raise NotImplementedError("pioemu cannot run opcode 0x%04x" % op)
        self._state = state
