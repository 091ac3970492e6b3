"""Opt-in truthful cam mechanism (issue 8 item 5, PT-3): stroke varies, cam phase random.

Owns the mechanism model selected by ``World(..., mechanism="truthful")`` (or a
line preset with ``"mechanism": "truthful"``), and the test conditions a world
can be given (``conditions=``: added back-pressure, bag height, cam start phase,
tubing wear).  Kept out of ``sim/mechanism.py`` and imported only on opt-in, so
the default world -- ideal mechanism, cam at phase 0, bag at pump height -- is
bit-identical to before and its MicroPython heap figure (PT-8) does not move.

Same cam geometry as ``sim.mechanism`` (3200 microsteps and 50 uL per turn,
delivery over the first 75 % of the turn, closed-form volumes: the cost per
``advance`` is constant).  The stroke of the truthful model is

    stroke = STROKE_UL * (1 + stroke_error)
             * (1 + K_BACK * P_down + K_HEAD * P_up + K_WEAR * t_h)

* ``P_down`` (mmHg, gauge): the pressure at the pump outlet, i.e. the line's
  pressure (venous pressure + flow * resistance + any added back-pressure).
  When the outlet valve opens, the line flows back into the compliant pumping
  segment until it is at that pressure, so the segment loses C_seg * P_down of
  its stroke.  Magnitude: one shipped ambulatory cassette pump (CADD-Solis;
  SPEC PT-3, "claims" column) states +/-6 % system accuracy and -10 % to +5 %
  at +100 mmHg back-pressure: the band's centre moves by -2.5 % (its edges by
  -4 % and -1 %), hence ``K_BACK = -2.5 % per 100 mmHg``.
* ``P_up`` (mmHg, gauge): the upstream head at the pump inlet, rho*g*h =
  0.7356 mmHg per cm of water (the bag 50 cm below the pump: -36.8 mmHg).
  The segment fills to the inlet pressure through the same wall compliance,
  so a bag below the pump under-fills it: ``K_HEAD = +2.5 % per 100 mmHg``
  (-0.92 % for the bag 50 cm below).  No cassette maker's head figure was
  found for this: the symmetric compliance is a modelling assumption (a tube
  that buckles under suction would lose more; pass ``k_head_pct_per_100mmhg``).
* ``t_h``: world time in hours.  PVC pumping segments take a set and lose
  resilience; ``wear_pct_per_h`` (default 0: off) is a linear drift of the
  stroke for studies of long infusions (negative: the stroke shrinks).

The pressures are those at the start of each ``advance`` (the world calls
``set_conditions``), so a runtime change of the bag height
(``World.set_bag_height_cm``, same conversion as ``head_mmhg``) or of the
patient's venous pressure reaches the stroke at the next move.  Reverse moves
and the encoder are those of ``sim.mechanism`` (pulses counted either way).
Volume is spread uniformly over the delivery part of the turn, as in the ideal
model (the real back-flow is concentrated at the valve opening; not modelled).
Calibration reference: the firmware's 50 uL/turn holds at 0 mmHg across the
segment, so even nominal conditions (venous pressure 5-8 mmHg) deliver
~0.1-0.2 % less than programmed.
"""
from sim.mechanism import Mechanism, USTEPS_PER_REV
from sim.prng import XorShift32

K_BACK_PCT_PER_100MMHG = -2.5     # CADD-Solis: -10 %..+5 % at +100 mmHg (centre -2.5 %)
K_HEAD_PCT_PER_100MMHG = 2.5      # same segment compliance, the fill side (assumption)
MMHG_PER_CM_H2O = 0.73556         # 98.0665 Pa per cm of water / 133.322 Pa per mmHg
PHASE_SEED_SALT = 0xCA3F          # the cam phase has its own stream (not the noise's)

MODELS = ("ideal", "truthful")
CONDITION_KEYS = ("cam_phase_usteps", "back_pressure_mmhg", "bag_height_cm",
                  "wear_pct_per_h", "k_back_pct_per_100mmhg", "k_head_pct_per_100mmhg")


def random_phase_usteps(seed):
    """The cam start phase for ``seed``: 0 .. USTEPS_PER_REV - 1, the same on every runtime."""
    rng = XorShift32((seed * 2654435761 + PHASE_SEED_SALT) & 0xFFFFFFFF)
    rng.next_u32()
    return rng.below(USTEPS_PER_REV)


def head_mmhg(bag_height_cm):
    """Upstream head of a bag ``bag_height_cm`` above (negative: below) the pump, mmHg."""
    return bag_height_cm * MMHG_PER_CM_H2O


class PhasedMechanism(Mechanism):
    """The ideal mechanism with its cam starting ``phase_usteps`` into the turn."""

    def __init__(self, stroke_error=0.0, encoder_pulses_per_rev=1, phase_usteps=0):
        Mechanism.__init__(self, stroke_error, encoder_pulses_per_rev)
        self.position_usteps = phase_usteps
        self.start_phase_usteps = phase_usteps
        # pulses counted from power-on: the marks already passed are not counted
        self._enc0 = phase_usteps * encoder_pulses_per_rev // USTEPS_PER_REV

    def phase_usteps(self):
        """Where the cam is in its turn now, 0 .. USTEPS_PER_REV - 1."""
        return self.position_usteps % USTEPS_PER_REV


class TruthfulMechanism(PhasedMechanism):
    """Stroke depends on back-pressure, upstream head and tubing wear (module docstring)."""

    def __init__(self, stroke_error=0.0, encoder_pulses_per_rev=1, phase_usteps=0,
                 k_back_pct_per_100mmhg=K_BACK_PCT_PER_100MMHG,
                 k_head_pct_per_100mmhg=K_HEAD_PCT_PER_100MMHG, wear_pct_per_h=0.0):
        PhasedMechanism.__init__(self, stroke_error, encoder_pulses_per_rev, phase_usteps)
        self.k_back = k_back_pct_per_100mmhg / 10000.0      # fraction per mmHg
        self.k_head = k_head_pct_per_100mmhg / 10000.0
        self.k_wear_per_ms = wear_pct_per_h / 100.0 / 3600000.0
        self.factor = 1.0            # stroke over nominal under the present conditions

    def stroke_factor(self, down_mmhg, up_mmhg, t_ms=0):
        """Stroke over its nominal value at these pressures and this age (1.0: nominal)."""
        f = 1.0 + self.k_back * down_mmhg + self.k_head * up_mmhg + self.k_wear_per_ms * t_ms
        return f if f > 0.0 else 0.0

    def set_conditions(self, down_mmhg, up_mmhg, t_ms):
        """The world's pressures and time for the next ``move`` (constant cost)."""
        self.factor = self.stroke_factor(down_mmhg, up_mmhg, t_ms)

    def effective_stroke_ul(self):
        """Volume of one full turn under the present conditions, uL."""
        return self.stroke_ul * self.factor

    def move(self, steps):
        return Mechanism.move(self, steps) * self.factor


def setup(world, model, seed, stroke_error, encoder_pulses_per_rev, conditions):
    """Give ``world`` the mechanism ``model`` and the test ``conditions`` (a dict, keys in
    ``CONDITION_KEYS``).  The cam phase: ``conditions["cam_phase_usteps"]`` if given,
    else random from ``seed`` for the truthful model and 0 for the ideal one."""
    if model not in MODELS:
        raise ValueError("unknown mechanism %r (choose %s)" % (model, ", ".join(MODELS)))
    for key in conditions:
        if key not in CONDITION_KEYS:
            raise ValueError("unknown mechanism condition %r (choose %s)"
                             % (key, ", ".join(CONDITION_KEYS)))
    phase = conditions.get("cam_phase_usteps")
    if phase is None:
        phase = random_phase_usteps(seed) if model == "truthful" else 0
    phase = int(phase) % USTEPS_PER_REV
    if model == "truthful":
        truthful = TruthfulMechanism(
            stroke_error, encoder_pulses_per_rev, phase,
            conditions.get("k_back_pct_per_100mmhg", K_BACK_PCT_PER_100MMHG),
            conditions.get("k_head_pct_per_100mmhg", K_HEAD_PCT_PER_100MMHG),
            conditions.get("wear_pct_per_h", 0.0))
        world._truthful = truthful
        world.mechanism = truthful
    else:
        world.mechanism = PhasedMechanism(stroke_error, encoder_pulses_per_rev, phase)
    world.mechanism_model = model
    back = conditions.get("back_pressure_mmhg", 0.0)
    if back:
        # an added back-pressure at the outlet (the IEC 60601-2-24 test raises the
        # collection vessel's pressure): the line drains into Pv + back
        world.line.venous_mmhg += back
        world.line.pressure_mmhg = world.line.venous_mmhg
    bag = conditions.get("bag_height_cm", 0.0)
    if bag:
        world._head_mmhg = head_mmhg(bag)
        world.upstream_mmhg = world._head_mmhg
        world._up_counts = int(world._head_mmhg / 0.4)   # world's 0.4 mmHg per ADC count
