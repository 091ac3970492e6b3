"""The simulated world around one pump: mechanism, line, air, battery, sensors, time.

Owns virtual time and all physics state.  The sim HAL backend (``hal/sim``)
only reads and writes this object: the stepper hands over the microsteps for
the next period (``command_steps``), the scenario or virtual pump calls
``advance(dt_ms)``, the sensors read noisy ADC codes from it.  Scenario hooks
(``clamp``, ``inject_bubble``, ``open_door``) and the fault injections of the
alarm tests (``block_upstream``, ``jam_cam``, ``free_flow``, ``stick_pressure``)
change the world, never the firmware.  Cost per ``advance`` is constant
(closed-form physics).  With no injection active the world behaves exactly as
without them: the upstream sensor has its own noise stream (integer arithmetic,
so reading it every cycle allocates nothing on MicroPython) and the downstream
one's sequence is unchanged by how often the firmware reads upstream (the first two
upstream reads, the power-on self test's, still draw from the shared stream).

Mechanism (issue 8 item 5, PT-3): the default is the ideal cam of ``sim.mechanism``
(stroke fixed, phase 0).  ``mechanism="truthful"`` (or ``"mechanism": "truthful"``
in a line preset) selects ``sim.mechanism_truthful``: stroke scaled by the outlet
pressure, the upstream head and tubing wear, the cam at a random phase drawn from
``seed``.  ``conditions`` (a dict, either model) sets test conditions: added
back-pressure, bag height, cam start phase, wear, the model's coefficients (keys
and magnitudes: ``sim/mechanism_truthful.py``).  Both are imported only when
asked for, so the default world is unchanged.

Patient and line hooks (false-alarm studies): ``set_venous_mmhg`` (posture or
movement: the venous pressure at the catheter tip from now on; the line relaxes
to the new equilibrium through its RC model), ``squeeze_line(factor)`` (the
patient lies on the line: downstream resistance times ``factor`` >= 1, 1.0
released; a full compression is ``clamp(True)``), ``set_bag_height_cm`` (the
upstream head: 1 cmH2O = 0.73556 mmHg (~0.7356), read by the upstream sensor and,
with the truthful mechanism, by its stroke -- the same conversion as its
``bag_height_cm`` condition).

Motion (SR-CORE-4/6): ``slip_cam(fraction)`` (slipping coupling: the cam turns
``fraction`` of the commanded microsteps, integer-exact over any number of
moves; 1.0 healthy, 0.0 like ``jam_cam``).  Negative ``command_steps`` turn the
cam backwards (the back-off after an occlusion stop): the line loses the volume
(pressure falls; an open line draws back from the patient, so
``delivered_to_patient_ul`` may decrease, mass balance kept), air bubbles do not
move back, the battery duty uses the step magnitude, ``steps_total`` is the
signed net count and ``steps_reverse_total`` the magnitude of the reverse steps.
The encoder counts marks passing either way (never decreases).  With upstream
blocked, reverse volume goes into the closed segment upstream (its pressure
rises) and still leaves the downstream line.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from sim.air import AirPath
from sim.battery import Battery
from sim.fluid_line import FluidLine
from sim.mechanism import Mechanism
from sim.noise import Noise
from sim.presets import PRESETS

# A leading underscore makes a const() private to this module: MicroPython folds it into
# the code, with no global and no qstr on the heap (PT-8, tests/test_micropython_heap.py).
# pressure transducer: 12-bit ADC, 400 counts at 0 mmHg, 0.4 mmHg per count
# (the board file of the sim holds the same calibration the firmware uses)
_ADC_OFFSET_COUNTS = const(400)
_ADC_MMHG_PER_COUNT = const(0.4)
_ADC_MAX = const(4095)
_NOISE_MMHG = const(2.0)          # 1 sigma, force-sensor + ADC noise
_UPSTREAM_MMHG = const(0.0)       # reservoir bag at pump height
_MAX_USTEP_RATE_HZ = const(20000.0)   # PIO step generator ceiling (500 mL/h needs ~8.9 kHz)
# upstream occlusion (closed upstream clamp / empty bag): the cam pulls a vacuum in the
# pumping segment, until the tube collapses; nothing then reaches the downstream line
_UPSTREAM_COMPLIANCE_UL_PER_MMHG = const(0.5)
_UPSTREAM_COLLAPSE_MMHG = const(-120.0)
_UPSTREAM_NOISE_SEED = const(0x5EED)       # the upstream sensor's own noise stream
_MMHG_PER_CM_H2O = const(0.73556)   # 98.0665 Pa / 133.322 Pa (sim.mechanism_truthful)
_SLIP_DEN = const(10000)            # slip_cam fraction in 1/10000 (exact accumulation)


class World:
    """Physics and virtual time for one simulated pump."""

    def __init__(self, preset="picc", seed=1, stroke_error=0.0, noise_mmhg=_NOISE_MMHG,
                 battery_soc=1.0, encoder_pulses_per_rev=1, mechanism=None, conditions=None):
        if preset not in PRESETS:
            raise ValueError("unknown line preset %r (choose %s)" %
                             (preset, ", ".join(sorted(PRESETS))))
        p = PRESETS[preset]
        self.preset = preset
        self.mechanism = Mechanism(stroke_error, encoder_pulses_per_rev)
        self.line = FluidLine(p["resistance_mmhg_s_per_ul"], p["compliance_ul_per_mmhg"],
                              p["venous_mmhg"])
        self.air = AirPath()
        self.battery = Battery(soc=battery_soc)
        self.noise = Noise(seed)
        self.noise_mmhg = noise_mmhg
        self.t_ms = 0
        self.door_closed = True
        self.pending_steps = 0
        self.motor_enabled = False
        self.steps_total = 0          # signed: forward minus reverse microsteps
        self.steps_reverse_total = 0  # magnitude of the reverse microsteps
        self.pumped_ul = 0.0
        self.delivered_to_patient_ul = 0.0
        self.flow_ml_per_h = 0.0
        self.air_passed_nl = 0        # not yet read by the air sensor
        self._air_frac_nl = 0.0       # the part of a nL not handed over yet (PT-5: a
        #                               bubble of the limit must read as the limit)
        self.air_stuck = False        # fault injection: detector output stuck
        # fault injections (alarm tests, issue 7): all off by default
        self.upstream_blocked = False  # closed upstream clamp or empty bag
        self.upstream_mmhg = _UPSTREAM_MMHG
        self.cam_jammed = False       # motor turns, the cam does not (jam / slipping coupling)
        self._slip = None             # slip_cam: cam turn per commanded step, in 1/_SLIP_DEN
        self._slip_rem = 0            # its remainder, carried so no step fraction is lost
        self.free_flow_usteps_per_s = 0   # the cam turns by itself (runaway / back-driven)
        self.pressure_stuck_down = None   # ADC code the downstream sensor is stuck at
        self.pressure_stuck_up = None
        self.noise_up = Noise(seed + _UPSTREAM_NOISE_SEED)
        # the first reads of the upstream sensor (the power-on self test's two) draw from
        # the shared stream, as before issue 7, so every recorded scenario stays identical
        self._up_shared_reads = 2
        self._up_counts = int(_UPSTREAM_MMHG / _ADC_MMHG_PER_COUNT)
        self._up_sigma_counts = int(noise_mmhg / _ADC_MMHG_PER_COUNT + 0.5)
        self._head_mmhg = _UPSTREAM_MMHG   # the bag's head: what a released upstream returns to
        self._truthful = None              # the truthful mechanism, when selected
        if mechanism is None:
            mechanism = p.get("mechanism")
        if conditions or (mechanism is not None and mechanism != "ideal"):
            from sim.mechanism_truthful import setup
            setup(self, mechanism or "ideal", seed, stroke_error, encoder_pulses_per_rev,
                  conditions or {})
        # an added back-pressure condition stays on top of the patient's venous pressure
        self._back_mmhg = self.line.venous_mmhg - p["venous_mmhg"]

    # ---- hooks used by the sim HAL ------------------------------------------
    def command_steps(self, steps, period_ms):
        """The stepper queues ``steps`` more microsteps (emitted by the next advance);
        negative: the cam turns backwards."""
        if self.motor_enabled:
            self.pending_steps += steps

    def take_air_nl(self):
        nl = self.air_passed_nl
        self.air_passed_nl = 0
        return nl

    # ---- scenario hooks ----------------------------------------------------------
    def clamp(self, closed):
        """Close (True) or open (False) a clamp downstream of the pump."""
        self.line.clamped = bool(closed)

    def squeeze_line(self, factor):
        """The patient lies on the line: downstream resistance times ``factor`` (>= 1.0;
        1.0 releases it).  A full compression is ``clamp(True)``."""
        self.line.squeeze(factor)

    def set_venous_mmhg(self, mmhg):
        """The patient's venous pressure at the catheter tip from now on (posture, movement);
        the line pressure relaxes toward the new equilibrium through the RC model."""
        self.line.venous_mmhg = mmhg + self._back_mmhg

    def set_bag_height_cm(self, cm):
        """The bag ``cm`` above (negative: below) the pump: upstream head cm * 0.73556 mmHg
        (read by the upstream sensor and the truthful stroke; with upstream blocked it
        applies on release)."""
        self._head_mmhg = cm * _MMHG_PER_CM_H2O
        if not self.upstream_blocked:
            self.block_upstream(False)

    def inject_bubble(self, volume_ul, distance_ul=0.0):
        self.air.inject(volume_ul, distance_ul)

    def clear_air(self):
        """The nurse primes the air out of the line (bubbles removed)."""
        self.air.bubbles = []
        self.air.present = False

    def open_door(self, is_open=True):
        self.door_closed = not is_open

    # ---- fault injection (issue 7: one per SR-AL-1 alarm the application detects) -----
    def block_upstream(self, blocked=True):
        """Close (True) / open (False) an upstream clamp, or hang an empty bag / a new one:
        the cam pulls a vacuum in the pumping segment; on release the bag refills it."""
        self.upstream_blocked = bool(blocked)
        if not blocked:
            self.upstream_mmhg = self._head_mmhg
            self._up_counts = int(self._head_mmhg / _ADC_MMHG_PER_COUNT)

    def jam_cam(self, jammed=True):
        """The motor steps but the cam does not turn (jammed cam, slipping coupling)."""
        self.cam_jammed = bool(jammed)

    def slip_cam(self, fraction):
        """Slipping coupling: the cam turns ``fraction`` (0.0 .. 1.0, in steps of 1/10000) of
        the commanded microsteps, remainders carried exactly; 1.0 is healthy."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("slip fraction %r outside 0.0 .. 1.0" % (fraction,))
        f = int(fraction * _SLIP_DEN + 0.5)
        self._slip = None if f == _SLIP_DEN else f
        self._slip_rem = 0

    def free_flow(self, usteps_per_s):
        """The cam turns by itself at ``usteps_per_s`` (0 stops it): fluid runs free."""
        self.free_flow_usteps_per_s = usteps_per_s

    def stick_pressure(self, which, code):
        """Pressure sensor ``"down"`` or ``"up"`` stuck at ADC ``code`` (None: healthy)."""
        if which == "down":
            self.pressure_stuck_down = code
        else:
            self.pressure_stuck_up = code

    # ---- time ----------------------------------------------------------------------
    def advance(self, dt_ms):
        """Apply the commanded steps over ``dt_ms`` and move time on."""
        steps = self.pending_steps
        self.pending_steps = 0
        dt_s = dt_ms / 1000.0
        turn = steps
        if self.cam_jammed:
            turn = 0
        elif self._slip is not None:
            turn = steps * self._slip + self._slip_rem
            self._slip_rem = turn % _SLIP_DEN
            turn //= _SLIP_DEN
        if self.free_flow_usteps_per_s:
            turn += self.free_flow_usteps_per_s * dt_ms // 1000
        if turn and self._truthful is not None:
            self._truthful.set_conditions(self.line.pressure_mmhg, self.upstream_mmhg, self.t_ms)
        pumped = self.mechanism.move(turn) if turn else 0.0
        self.steps_total += steps
        if steps < 0:
            steps = -steps
            self.steps_reverse_total += steps
        if self.upstream_blocked and pumped:
            # the segment empties into a vacuum: nothing goes downstream (turning back,
            # the cam fills the closed segment from the downstream line)
            up = self.upstream_mmhg - pumped / _UPSTREAM_COMPLIANCE_UL_PER_MMHG
            self.upstream_mmhg = up if up > _UPSTREAM_COLLAPSE_MMHG else _UPSTREAM_COLLAPSE_MMHG
            self._up_counts = int(self.upstream_mmhg / _ADC_MMHG_PER_COUNT)
            if pumped > 0.0:
                pumped = 0.0
        if self.air.bubbles:
            # bubbles move with the forward flow only
            nl = self.air.move(pumped if pumped > 0.0 else 0.0) * 1000.0 + self._air_frac_nl
            whole = int(nl + 1e-6)     # float error, not physics: 1e-6 nL
            self._air_frac_nl = nl - whole
            self.air_passed_nl += whole
        to_patient = self.line.step(pumped, dt_s)
        self.pumped_ul += pumped
        self.delivered_to_patient_ul += to_patient
        self.flow_ml_per_h = to_patient * 3.6 / dt_s
        # motor duty: fraction of the 20 kHz maximum microstep rate in use (either way)
        duty = steps / (dt_s * _MAX_USTEP_RATE_HZ)
        self.battery.draw(dt_s, duty if duty < 1.0 else 1.0)
        self.t_ms += dt_ms

    # ---- readouts -------------------------------------------------------------------
    @property
    def downstream_mmhg(self):
        return self.line.pressure_mmhg

    def _adc(self, mmhg):
        code = int(_ADC_OFFSET_COUNTS + (mmhg + self.noise.gauss(self.noise_mmhg))
                   / _ADC_MMHG_PER_COUNT + 0.5)
        if code < 0:
            return 0
        return _ADC_MAX if code > _ADC_MAX else code

    def pressure_adc_down(self):
        if self.pressure_stuck_down is not None:
            return self.pressure_stuck_down
        return self._adc(self.line.pressure_mmhg)

    def pressure_adc_up(self):
        """Upstream ADC code: integer arithmetic only (the firmware reads it every cycle)."""
        if self.pressure_stuck_up is not None:
            return self.pressure_stuck_up
        if self._up_shared_reads:
            self._up_shared_reads -= 1
            return self._adc(self.upstream_mmhg)
        n = self.noise_up
        s = ((n.next_u32() >> 24) + (n.next_u32() >> 24) + (n.next_u32() >> 24) +
             (n.next_u32() >> 24) - 510)           # Irwin-Hall of 4 bytes: sigma ~148
        code = _ADC_OFFSET_COUNTS + self._up_counts + s * self._up_sigma_counts // 148
        if code < 0:
            return 0
        return _ADC_MAX if code > _ADC_MAX else code

    @property
    def air_present(self):
        return self.air_stuck or self.air.present

    @property
    def encoder_count(self):
        return self.mechanism.encoder_count()

    @property
    def battery_mv(self):
        return self.battery.voltage_mv()

    def trace_row(self):
        """(t_ms, pumped_ul, patient_ul, downstream_mmhg, flow_ml_per_h) for plots."""
        return (self.t_ms, self.pumped_ul, self.delivered_to_patient_ul,
                self.line.pressure_mmhg, self.flow_ml_per_h)
