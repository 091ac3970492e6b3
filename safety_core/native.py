"""Native-module backend of the facade: the C core as a MicroPython .mpy (``sc_native``).

Owns the adaptation of ``sc_native`` (built from ``safety_core/natmod``) to the
shape of ``ReferenceCore``: the state is a bytearray owned here; scalar fields
are read through ``sc_native.word`` (no allocation on the per-cycle path).
Importing this module raises ImportError where the native module is absent,
which makes the facade fall back to cffi or the reference.
"""
import sc_native  # noqa: F401  (ImportError here = backend unavailable)

from safety_core.constants import (  # noqa: E402
    PROGRAM_FIELDS, STATE_SCALARS, STATE_WORDS, AIR_BUCKETS, WINDOW_BUCKETS, state_word_index)

# word indices in sc_state_t (all fields are 32-bit words, see safety_core.h and
# constants.STATE_SCALARS; tests/test_core_constants.py checks them against the C struct)
_MAGIC = 0
_PHASE = 1
_FAULTS = 2
_DELIVERED = 8
_KVO_STEPS = 29
_USTEP_PL = 31
_VTBI_STEPS = 32
_WORDS = STATE_WORDS
_AIR_FIRST = len(STATE_SCALARS)               # air_bucket_nl[0]
_WIN_FIRST = _AIR_FIRST + AIR_BUCKETS         # win_steps[0]


class NativeCore:
    """The C core through the MicroPython native module."""

    def __init__(self):
        self._state = bytearray(sc_native.state_size())
        self._out = bytearray(16)
        self._program = [0] * len(PROGRAM_FIELDS)

    def init(self, ustep_volume_pl):
        return sc_native.init(self._state, ustep_volume_pl)

    def load_program(self, p):
        values = self._program
        for i in range(len(PROGRAM_FIELDS)):
            values[i] = p[PROGRAM_FIELDS[i]]
        return sc_native.load(self._state, values)

    def set_rate(self, rate_ul_per_h, until_ul):
        return sc_native.set_rate(self._state, rate_ul_per_h, until_ul)

    def bolus(self, kind, amount_ul):
        return sc_native.bolus(self._state, kind, amount_ul)

    def restore_history(self, ul_1h, ul_4h, boluses_1h):
        return sc_native.restore_history(self._state, ul_1h, ul_4h, boluses_1h)

    def window_steps(self, hours4):
        return sc_native.window_steps(self._state, hours4)

    def start(self):
        return sc_native.start(self._state)

    def pause(self):
        sc_native.pause(self._state)

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks, encoder_count=0):
        return sc_native.run(self._state, self._out, downstream_mmhg, air_nl, air_present,
                             heartbeat, n_ticks, encoder_count)

    def tick(self, air_nl, air_present, heartbeat):
        return sc_native.tick(self._state, self._out, air_nl, air_present, heartbeat)

    def sample(self, downstream_mmhg, encoder_count):
        return sc_native.sample(self._state, downstream_mmhg, encoder_count)

    def take_backoff(self):
        return sc_native.take_backoff(self._state)

    def backoff_done(self, usteps):
        sc_native.backoff_done(self._state, usteps)

    def set_motion_check(self, usteps_per_pulse):
        return sc_native.set_motion_check(self._state, usteps_per_pulse)

    def acknowledge(self, downstream_mmhg, air_present, heartbeat, encoder_count=0):
        return sc_native.acknowledge(self._state, downstream_mmhg, air_present, heartbeat,
                                     encoder_count)

    def field(self, name):
        """A scalar field of sc_state_t by its C name (looked up, then one word read)."""
        return sc_native.word(self._state, state_word_index(name))

    @property
    def phase(self):
        return sc_native.word(self._state, _PHASE)

    @property
    def faults(self):
        return sc_native.word(self._state, _FAULTS)

    @property
    def delivered_steps(self):
        return sc_native.word(self._state, _DELIVERED)

    @property
    def kvo_steps(self):
        return sc_native.word(self._state, _KVO_STEPS)

    @property
    def vtbi_steps(self):
        return sc_native.word(self._state, _VTBI_STEPS)

    @property
    def ustep_volume_pl(self):
        return sc_native.word(self._state, _USTEP_PL)

    @property
    def out_fault_tick(self):
        o = self._out
        return o[12] | (o[13] << 8) | (o[14] << 16) | (o[15] << 24)

    def snapshot(self):
        """Every field in declaration order (as reference.snapshot)."""
        w = [sc_native.word(self._state, i) for i in range(_WORDS)]
        return tuple(w[:_AIR_FIRST]) + (tuple(w[_AIR_FIRST:_WIN_FIRST]),
                                        tuple(w[_WIN_FIRST:_WIN_FIRST + WINDOW_BUCKETS]),
                                        tuple(w[_WIN_FIRST + WINDOW_BUCKETS:]))
