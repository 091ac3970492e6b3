"""Native-module backend of the facade: the C core as a MicroPython .mpy (``sc_native``).

Owns the adaptation of ``sc_native`` (built from ``safety_core/natmod``) to the
shape of ``ReferenceCore``: the state is a bytearray owned here; scalar fields
are read through ``sc_native.word`` (no allocation on the per-cycle path).
Importing this module raises ImportError where the native module is absent,
which makes the facade fall back to cffi or the reference.
"""
import sc_native  # noqa: F401  (ImportError here = backend unavailable)

# word indices in sc_state_t (all fields are 32-bit words, see safety_core.h)
_PHASE = 3
_FAULTS = 4
_DELIVERED = 18
_KVO_STEPS = 19
_VTBI_STEPS = 17
_USTEP_PL = 1
_WORDS = 44


class NativeCore:
    """The C core through the MicroPython native module."""

    def __init__(self):
        self._state = bytearray(sc_native.state_size())
        self._out = bytearray(16)

    def init(self, ustep_volume_pl):
        return sc_native.init(self._state, ustep_volume_pl)

    def load_program(self, rate_ul_per_h, vtbi_ul, kvo_ul_per_h, hard_min_rate_ul_per_h,
                     hard_max_rate_ul_per_h, occlusion_limit_mmhg, bubble_limit_ul):
        return sc_native.load(self._state, rate_ul_per_h, vtbi_ul, kvo_ul_per_h,
                              hard_min_rate_ul_per_h, hard_max_rate_ul_per_h,
                              occlusion_limit_mmhg, bubble_limit_ul)

    def start(self):
        return sc_native.start(self._state)

    def pause(self):
        sc_native.pause(self._state)

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks):
        return sc_native.run(self._state, self._out, downstream_mmhg, air_nl, air_present,
                             heartbeat, n_ticks)

    def acknowledge(self, downstream_mmhg, air_present, heartbeat):
        return sc_native.acknowledge(self._state, downstream_mmhg, air_present, heartbeat)

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
        w = [sc_native.word(self._state, i) for i in range(_WORDS)]
        return tuple(w[:29]) + (tuple(w[29:]),)
