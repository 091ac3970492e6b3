"""cffi backend of the facade: the C core compiled for the host (``safety_core._sc_cffi``).

Owns the adaptation of the cffi module to the backend shape the facade uses
(the same as ``reference.ReferenceCore`` and ``native.NativeCore``): the state
and the in/out structs are cffi allocations owned here; fields are read from
the C struct by name.  Importing it raises ImportError where the host build is
missing, which makes the facade fall back to the reference.  CPython only.
"""
from safety_core import _sc_cffi  # noqa: F401  (ImportError = backend unavailable)
from safety_core.constants import OK, PROGRAM_FIELDS, STATE_SCALARS, WATCH_FIELDS


class CffiCore:
    """The host build of the C core through cffi."""

    def __init__(self, module=None):
        if module is None:
            module = _sc_cffi
        ffi, lib = module.ffi, module.lib
        self._ffi = ffi
        self._lib = lib
        self._s = ffi.new("sc_state_t *")
        self._in = ffi.new("sc_inputs_t *")
        self._out = ffi.new("sc_output_t *")
        self._why = ffi.new("sc_refusal_t *")
        self._prog = ffi.new("sc_program_t *")

    def _refusal(self, rc):
        if rc == OK:
            return None
        w = self._why
        return (w.code, w.field, w.limit)

    def init(self, ustep_volume_pl):
        return self._refusal(self._lib.sc_init(self._s, ustep_volume_pl, self._why))

    def load_program(self, p):
        prog = self._prog
        for name in PROGRAM_FIELDS:
            setattr(prog, name, p[name])
        return self._refusal(self._lib.sc_load_program(self._s, prog, self._why))

    def set_rate(self, rate_ul_per_h, until_ul):
        return self._refusal(self._lib.sc_set_rate(self._s, rate_ul_per_h, until_ul, self._why))

    def bolus(self, kind, amount_ul):
        return self._lib.sc_bolus(self._s, kind, amount_ul)

    def restore_history(self, ul_1h, ul_4h, boluses_1h):
        return self._lib.sc_restore_history(self._s, ul_1h, ul_4h, boluses_1h)

    def window_steps(self, hours4):
        return self._lib.sc_window_steps(self._s, hours4)

    def start(self):
        return self._lib.sc_start(self._s)

    def pause(self):
        self._lib.sc_pause(self._s)

    def run(self, downstream_mmhg, air_nl, air_present, heartbeat, n_ticks, encoder_count=0):
        i = self._in
        i.downstream_mmhg = downstream_mmhg
        i.air_nl = air_nl
        i.air_present = air_present
        i.heartbeat = heartbeat
        i.encoder_count = encoder_count
        self._lib.sc_run(self._s, i, n_ticks, self._out)
        return self._out.steps

    def tick(self, air_nl, air_present, heartbeat):
        i = self._in
        i.air_nl = air_nl
        i.air_present = air_present
        i.heartbeat = heartbeat
        return self._lib.sc_tick(self._s, i, self._out)

    def sample(self, downstream_mmhg, encoder_count):
        i = self._in
        i.downstream_mmhg = downstream_mmhg
        i.encoder_count = encoder_count
        return self._lib.sc_sample(self._s, i)

    def take_backoff(self):
        return self._lib.sc_take_backoff(self._s)

    def backoff_done(self, usteps):
        self._lib.sc_backoff_done(self._s, usteps)

    def set_motion_check(self, usteps_per_pulse):
        return self._refusal(self._lib.sc_set_motion_check(self._s, usteps_per_pulse, self._why))

    def acknowledge(self, downstream_mmhg, air_present, heartbeat, encoder_count=0):
        i = self._in
        i.downstream_mmhg = downstream_mmhg
        i.air_nl = 0
        i.air_present = air_present
        i.heartbeat = heartbeat
        i.encoder_count = encoder_count
        return self._lib.sc_acknowledge(self._s, i)

    def field(self, name):
        """A scalar field of sc_state_t (program fields included) by its C name."""
        s = self._s
        if name in PROGRAM_FIELDS:
            return getattr(s.program, name)
        if name in WATCH_FIELDS:
            return getattr(s.watch, name)
        return getattr(s, name)

    @property
    def phase(self):
        return self._s.phase

    @property
    def faults(self):
        return self._s.faults

    @property
    def delivered_steps(self):
        return self._s.delivered_steps

    @property
    def kvo_steps(self):
        return self._s.kvo_steps

    @property
    def out_fault_tick(self):
        return self._out.fault_tick

    @property
    def ustep_volume_pl(self):
        return self._s.ustep_volume_pl

    @property
    def vtbi_steps(self):
        return self._s.vtbi_steps

    def snapshot(self):
        """Every field of sc_state_t in declaration order (as reference.snapshot)."""
        s = self._s
        return tuple(self.field(name) for name in STATE_SCALARS) + (
            tuple(s.air_bucket_nl), tuple(s.win_steps), tuple(s.win_boluses))
