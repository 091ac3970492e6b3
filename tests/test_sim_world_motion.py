"""Simulated world: patient/line hooks, motion faults and reverse moves (sim/world.py).

Covers the hooks a false-alarm benchmark and the core's motion check use:
``set_venous_mmhg``, ``squeeze_line``, ``set_bag_height_cm`` (SR-CORE-3, PT-4),
``slip_cam`` (SR-CORE-6), negative ``command_steps`` with a direction-blind encoder
(SR-CORE-4/6), the ESP32 stepper's signed moves, and -- most important -- that a
world which uses none of them is bit-identical to the world before they existed
(expected digests computed with the code of the commit before this change).
"""
import hashlib
import math
import subprocess
import sys
import types

import pytest

from sim.mechanism import DELIVERY_USTEPS, STROKE_UL, USTEPS_PER_REV, Mechanism
from sim.presets import PRESETS
from sim.world import World

REPO = __file__.rsplit("/tests/", 1)[0]


def _enabled(**kw):
    w = World(**kw)
    w.motor_enabled = True
    return w


def _tau_s(w):
    return w.line.resistance * w.line.compliance


# ---- bit identity of the default world ------------------------------------------------------

def _fixed_run(neutral=False, **kw):
    """Forward-only moves with the old injections (bubble, clamp, free flow, upstream block,
    jam); every readout after every advance."""
    w = World(**kw)
    if neutral:
        w.squeeze_line(1.0)
        w.slip_cam(1.0)
        w.set_bag_height_cm(0)
        w.set_venous_mmhg(PRESETS[kw.get("preset", "picc")]["venous_mmhg"])
    w.motor_enabled = True
    rows = []
    for i in range(400):
        if i == 50:
            w.inject_bubble(30.0, 20.0)
        if i == 120:
            w.clamp(True)
        if i == 160:
            w.clamp(False)
        if i == 200:
            w.free_flow(900)
        if i == 230:
            w.free_flow(0)
        if i == 260:
            w.block_upstream(True)
        if i == 290:
            w.block_upstream(False)
        if i == 300:
            w.jam_cam(True)
        if i == 310:
            w.jam_cam(False)
        w.command_steps(37 * (i % 7) + 11, 100)
        w.advance(100)
        rows.append((w.t_ms, w.pumped_ul, w.delivered_to_patient_ul, w.line.pressure_mmhg,
                     w.flow_ml_per_h, w.encoder_count, w.pressure_adc_down(),
                     w.pressure_adc_up(), w.battery_mv, w.air_passed_nl, w.air_present,
                     w.steps_total))
    return rows


# (kwargs, sha256 of repr(rows) without the air read-out, last row): from the original
# sim/ (git show HEAD:sim/... of the commit before issue 8's world hooks).  The air read-out
# (index 9, air_passed_nl) changed on purpose with PT-5: the world now carries the part of
# a nL it has not handed over, so a bubble reads as its whole volume (30 uL -> 30,000 nL,
# where it used to read 29,995 / 29,994).
AIR = 9
BASELINE = [
    ({}, "6a2f3dbaabeaf9df8040c27916fdfca52fef073aaddb9bc4075067a44ad4897c",
     (40000, 744.8333333333334, 708.3463788524872, 32.367952655899806, 82.4235701131898,
      15, 483, 396, 4199, 30000, False, 48689)),
    ({"preset": "peripheral", "seed": 9, "encoder_pulses_per_rev": 4},
     "0bc27a288ff5e3a7c5448e6b48b25fca9baf0ad881391aa263e9ee0987fbc399",
     (40000, 744.8333333333334, 724.7444852633417, 23.068142866779986, 92.94432786917068,
      62, 448, 401, 4199, 30000, False, 48689)),
    ({"seed": 5, "mechanism": "truthful", "encoder_pulses_per_rev": 3},
     "f2c626ed19d2a89d600a6599200211367e0704c1f0d5eb29b8bbc8edf258ab89",
     (40000, 717.8833701817416, 692.6585364378741, 23.920517359636875, 57.16026082005028,
      47, 462, 398, 4199, 30000, False, 48689)),
]


def _digest_without_air(rows):
    return hashlib.sha256(repr([r[:AIR] + r[AIR + 1:] for r in rows]).encode()).hexdigest()


@pytest.mark.parametrize("kw,digest,last", BASELINE)
def test_default_world_bit_identical_to_before(kw, digest, last):
    rows = _fixed_run(**kw)
    assert rows[-1] == last
    assert _digest_without_air(rows) == digest


@pytest.mark.parametrize("kw,digest,last", BASELINE)
def test_neutral_hook_values_change_nothing(kw, digest, last):
    rows = _fixed_run(neutral=True, **kw)
    assert rows[-1] == last
    assert _digest_without_air(rows) == digest


def test_a_bubble_reads_as_its_whole_volume_PT_5():
    """The world hands the air sensor whole nL and carries the rest: a 100 uL bubble
    crossing at 1 mL/h over many cycles reads 100,000 nL, not a few nL short."""
    w = World("picc")
    w.motor_enabled = True
    w.inject_bubble(100.0, 0.0)
    total = 0
    for _ in range(2000):
        w.command_steps(18, 1000)       # ~1 mL/h
        w.advance(1000)
        total += w.take_air_nl()
    assert total == 100000


def test_new_counters_start_at_zero():
    w = World()
    assert w.steps_reverse_total == 0 and w.steps_total == 0
    assert w.line.resistance == w.line.resistance_open


# ---- patient movement and line hooks (SR-CORE-3 false alarms, PT-4) ---------------------------

def test_sr_core_3_venous_step_relaxes_to_new_equilibrium():
    w = World("picc")
    assert w.line.pressure_mmhg == 5.0
    w.set_venous_mmhg(25.0)                      # +20 mmHg posture step
    assert w.line.pressure_mmhg == 5.0           # no jump: the line relaxes
    tau = _tau_s(w)
    w.advance(100)
    assert w.line.pressure_mmhg == pytest.approx(25.0 - 20.0 * math.exp(-0.1 / tau), rel=1e-12)
    for _ in range(int(20 * tau * 10)):
        w.advance(100)
    assert w.line.pressure_mmhg == pytest.approx(25.0, abs=1e-6)
    assert w.delivered_to_patient_ul == pytest.approx(-20.0 * w.line.compliance, abs=1e-5)
    w.set_venous_mmhg(5.0)                       # back down: -20 mmHg
    for _ in range(int(20 * tau * 10)):
        w.advance(100)
    assert w.line.pressure_mmhg == pytest.approx(5.0, abs=1e-6)
    assert w.delivered_to_patient_ul == pytest.approx(0.0, abs=1e-6)


def test_venous_step_keeps_an_added_back_pressure():
    w = World(conditions={"back_pressure_mmhg": 100.0})
    w.set_venous_mmhg(25.0)
    assert w.line.venous_mmhg == pytest.approx(125.0)


def test_sr_core_3_venous_step_under_flow():
    w = _enabled(preset="peripheral")
    q = 25.0                                      # uL/s: 160 usteps per 100 ms, 1/2 rev/s
    for _ in range(600):
        w.command_steps(160, 100)
        w.advance(100)
    base = _mean_pressure(w, 160, 40)
    w.set_venous_mmhg(28.0)
    for _ in range(300):
        w.command_steps(160, 100)
        w.advance(100)
    assert _mean_pressure(w, 160, 40) - base == pytest.approx(20.0, abs=0.05)
    assert base == pytest.approx(8.0 + q * w.line.resistance, rel=0.01)


def _mean_pressure(w, steps, n):
    """Mean line pressure over ``n`` advances of 100 ms (whole cam turns)."""
    total = 0.0
    for _ in range(n):
        w.command_steps(steps, 100)
        w.advance(100)
        total += w.line.pressure_mmhg
    return total / n


@pytest.mark.parametrize("factor", [2.0, 3.0])
def test_sr_core_3_squeeze_raises_steady_pressure_by_q_r(factor):
    w = _enabled(preset="picc")
    q = 160 * 10 / USTEPS_PER_REV * STROKE_UL     # 25 uL/s mean
    r = w.line.resistance
    for _ in range(300):
        w.command_steps(160, 100)
        w.advance(100)
    base = _mean_pressure(w, 160, 40)
    w.squeeze_line(factor)
    assert w.line.resistance == r * factor
    assert _tau_s(w) == pytest.approx(r * factor * w.line.compliance)
    for _ in range(int(12 * r * factor * w.line.compliance * 10)):
        w.command_steps(160, 100)
        w.advance(100)
    squeezed = _mean_pressure(w, 160, 40)
    assert squeezed - base == pytest.approx(q * r * (factor - 1.0), rel=0.02)
    w.squeeze_line(1.0)
    assert w.line.resistance == r                 # released exactly
    for _ in range(300):
        w.command_steps(160, 100)
        w.advance(100)
    assert _mean_pressure(w, 160, 40) == pytest.approx(base, abs=0.01)


def test_squeeze_exact_exponential_and_clamp():
    w = World("picc")
    w.set_venous_mmhg(15.0)
    w.squeeze_line(4.0)
    tau = _tau_s(w)
    w.advance(500)
    assert w.line.pressure_mmhg == pytest.approx(15.0 - 10.0 * math.exp(-0.5 / tau), rel=1e-12)
    w.clamp(True)                                 # full compression: nothing moves
    p = w.line.pressure_mmhg
    w.advance(1000)
    assert w.line.pressure_mmhg == p
    with pytest.raises(ValueError):
        w.squeeze_line(0.5)


def test_sr_core_3_bag_height_changes_upstream_reading():
    w = World()
    for _ in range(2):                            # the self test's shared-stream reads
        w.pressure_adc_up()
    at_pump = sum(w.pressure_adc_up() for _ in range(4000)) / 4000.0
    w.set_bag_height_cm(50.0)
    assert w.upstream_mmhg == pytest.approx(50.0 * 0.7356, rel=1e-4)
    assert w._up_counts == int(50.0 * 0.73556 / 0.4)   # the sensor's noise-free code - 400
    above = sum(w.pressure_adc_up() for _ in range(4000)) / 4000.0
    w.set_bag_height_cm(-50.0)
    below = sum(w.pressure_adc_up() for _ in range(4000)) / 4000.0
    counts = int(50.0 * 0.73556 / 0.4)            # 0.4 mmHg per ADC count, truncated
    assert above - at_pump == pytest.approx(counts, abs=1.5)
    assert at_pump - below == pytest.approx(counts, abs=1.5)


def test_bag_height_with_upstream_blocked_applies_on_release():
    w = _enabled()
    w.block_upstream(True)
    w.command_steps(800, 100)
    w.advance(100)
    vac = w.upstream_mmhg
    assert vac < 0.0
    w.set_bag_height_cm(30.0)
    assert w.upstream_mmhg == vac
    w.block_upstream(False)
    assert w.upstream_mmhg == pytest.approx(30.0 * 0.73556)


def _truthful_rows(w):
    w.motor_enabled = True
    rows = []
    for i in range(60):
        w.command_steps(300 + i, 100)
        w.advance(100)
        rows.append(w.trace_row() + (w.encoder_count, w.pressure_adc_up()))
    return rows


def test_bag_height_at_runtime_matches_the_truthful_condition():
    runtime = World(seed=3, mechanism="truthful", conditions={"wear_pct_per_h": 0.0})
    runtime.set_bag_height_cm(-50.0)
    built = World(seed=3, mechanism="truthful", conditions={"bag_height_cm": -50.0})
    assert _truthful_rows(runtime) == _truthful_rows(built)
    assert runtime.mechanism.factor < 1.0         # the stroke follows the (lower) head


def test_bag_height_moves_the_truthful_stroke():
    level = World(seed=3, mechanism="truthful")
    low = World(seed=3, mechanism="truthful")
    low.set_bag_height_cm(-50.0)
    a = _truthful_rows(level)[-1][1]
    b = _truthful_rows(low)[-1][1]
    assert b / a == pytest.approx(1.0 - 0.025 * 50 * 0.73556 / 100, rel=2e-3)


# ---- motion faults (SR-CORE-6) ---------------------------------------------------------------

def test_sr_core_6_slip_half_turns_exactly_half():
    w = _enabled()
    w.slip_cam(0.5)
    commanded = 0
    for i in range(1000):
        s = (i * 7919) % 97 + 1                   # odd and even counts
        w.command_steps(s, 100)
        w.advance(100)
        commanded += s
        assert w.mechanism.position_usteps == commanded // 2
    assert w.steps_total == commanded             # the motor still did every step
    assert w.encoder_count == (commanded // 2) // USTEPS_PER_REV


@pytest.mark.parametrize("fraction,num", [(0.3, 3000), (0.9, 9000), (0.3333, 3333)])
def test_sr_core_6_slip_fraction_integer_exact(fraction, num):
    w = _enabled()
    w.slip_cam(fraction)
    commanded = 0
    for i in range(500):
        s = (i * 31) % 53 + 1
        w.command_steps(s, 100)
        w.advance(100)
        commanded += s
        assert w.mechanism.position_usteps == commanded * num // 10000


def test_slip_zero_is_a_jam_and_one_is_healthy():
    w = _enabled()
    w.slip_cam(0.0)
    w.command_steps(5000, 100)
    w.advance(100)
    assert w.mechanism.position_usteps == 0 and w.pumped_ul == 0.0
    w.slip_cam(1.0)
    w.command_steps(777, 100)
    w.advance(100)
    assert w.mechanism.position_usteps == 777
    with pytest.raises(ValueError):
        w.slip_cam(1.5)
    with pytest.raises(ValueError):
        w.slip_cam(-0.1)


def test_slip_with_reverse_moves_stays_exact():
    w = _enabled()
    w.slip_cam(0.5)
    net = 0
    for s in (1001, -333, 77, -1, 9, -500, 3):
        w.command_steps(s, 100)
        w.advance(100)
        net += s
        assert w.mechanism.position_usteps == net // 2


# ---- reverse moves (SR-CORE-4 back-off) -------------------------------------------------------

def test_sr_core_4_reverse_under_clamp_lowers_pressure_by_volume_over_compliance():
    w = _enabled(encoder_pulses_per_rev=4)
    w.clamp(True)
    w.command_steps(1600, 100)
    w.advance(100)
    p_high = w.line.pressure_mmhg
    assert p_high == pytest.approx(5.0 + 1600 / DELIVERY_USTEPS * STROKE_UL / w.line.compliance)
    assert w.encoder_count == 2                   # marks at 800 and 1600
    w.command_steps(-800, 100)
    w.advance(100)
    back_ul = 800 / DELIVERY_USTEPS * STROKE_UL
    assert w.pumped_ul == pytest.approx(1600 / DELIVERY_USTEPS * STROKE_UL - back_ul)
    assert p_high - w.line.pressure_mmhg == pytest.approx(back_ul / w.line.compliance)
    assert w.encoder_count == 3                   # the 1600 mark passed again, backwards
    assert w.steps_total == 800 and w.steps_reverse_total == 800
    assert w.delivered_to_patient_ul == 0.0
    w.command_steps(800, 100)
    w.advance(100)
    assert w.encoder_count == 4
    assert w.line.pressure_mmhg == pytest.approx(p_high)


def _brute_pulses(positions, ppr):
    """Pulses of a direction-blind sensor, microstep by microstep."""
    count = 0
    for a, b in zip(positions, positions[1:]):
        d = 1 if b > a else -1
        for p in range(a, b, d):
            if (p + d) * ppr // USTEPS_PER_REV != p * ppr // USTEPS_PER_REV:
                count += 1
    return count


@pytest.mark.parametrize("ppr", [1, 3, 4, 16])
def test_sr_core_6_encoder_counts_either_direction_never_decreases(ppr):
    w = _enabled(encoder_pulses_per_rev=ppr)
    positions = [0]
    last = 0
    moves = [4000, -2500, -1500, -700, 900, 3300, -3201, 1, -1, 1, -6400, 12000, -17]
    for s in moves:
        w.command_steps(s, 100)
        w.advance(100)
        positions.append(positions[-1] + s)
        assert w.encoder_count >= last
        last = w.encoder_count
        assert w.encoder_count == _brute_pulses(positions, ppr)
    assert w.steps_total == sum(moves)
    assert w.steps_reverse_total == sum(-s for s in moves if s < 0)


def test_forward_only_encoder_formula_unchanged():
    m = Mechanism(encoder_pulses_per_rev=5)
    for s in (1, 639, 640, 3200, 12345, 7):
        m.move(s)
        assert m.encoder_count() == m.position_usteps * 5 // USTEPS_PER_REV


def test_sr_core_4_reverse_on_open_line_draws_back_with_mass_balance():
    w = _enabled(preset="picc")
    w.command_steps(1200, 100)                    # 25 uL in, then the line settles at Pv
    w.advance(100)
    for _ in range(300):
        w.advance(100)
    delivered = w.delivered_to_patient_ul
    assert delivered == pytest.approx(25.0, abs=1e-6)
    w.command_steps(-1200, 100)                   # 25 uL back out
    w.advance(100)
    assert w.pumped_ul == pytest.approx(0.0, abs=1e-12)
    assert w.line.pressure_mmhg < w.line.venous_mmhg
    assert w.flow_ml_per_h < 0.0                  # drawing back from the patient
    for _ in range(300):
        w.advance(100)
    assert w.delivered_to_patient_ul < delivered
    assert w.delivered_to_patient_ul == pytest.approx(0.0, abs=1e-6)
    stored = w.line.compliance * (w.line.pressure_mmhg - w.line.venous_mmhg)
    assert w.pumped_ul == pytest.approx(w.delivered_to_patient_ul + stored, abs=1e-9)


def test_reverse_battery_duty_uses_magnitude():
    fwd = _enabled()
    rev = _enabled()
    for _ in range(50):
        fwd.command_steps(2000, 100)
        fwd.advance(100)
        rev.command_steps(-2000, 100)
        rev.advance(100)
    assert rev.battery.soc == fwd.battery.soc < 1.0


def test_reverse_does_not_move_air_back():
    w = _enabled()
    w.inject_bubble(20.0, 5.0)
    w.command_steps(1200, 100)                    # 25 uL forward: the bubble crosses
    w.advance(100)
    passed = w.take_air_nl()
    assert passed == 20000
    w.inject_bubble(20.0, 0.0)
    w.command_steps(-1200, 100)
    w.advance(100)
    assert w.take_air_nl() == 0
    assert w.air.bubbles and w.air_present        # still in the detector, not moved


def test_reverse_with_upstream_blocked_fills_the_closed_segment():
    w = _enabled()
    w.clamp(True)
    w.command_steps(2400, 100)
    w.advance(100)
    w.block_upstream(True)
    p_line = w.line.pressure_mmhg
    w.command_steps(-1200, 100)
    w.advance(100)
    assert w.upstream_mmhg == pytest.approx(25.0 / 0.5)
    assert p_line - w.line.pressure_mmhg == pytest.approx(25.0 / w.line.compliance)


def test_reverse_truthful_mechanism_counts_pulses_from_its_phase():
    w = World(seed=4, mechanism="truthful", encoder_pulses_per_rev=2,
              conditions={"cam_phase_usteps": 1500})
    w.motor_enabled = True
    w.command_steps(200, 100)                     # passes the mark at 1600
    w.advance(100)
    assert w.encoder_count == 1
    w.command_steps(-300, 100)                    # back past it
    w.advance(100)
    assert w.encoder_count == 2
    assert w.mechanism.position_usteps == 1400
    assert w.pumped_ul < 0.0


def test_sim_hal_stepper_passes_signed_moves():
    from hal.sim import SimStepper
    w = World()
    st = SimStepper(w)
    st.enable(True)
    st.move(-640, 100)
    assert st.steps_issued() == -640 and w.pending_steps == -640
    w.advance(100)
    assert w.mechanism.position_usteps == -640 and w.steps_reverse_total == 640


# ---- ESP32 stepper: signed moves (DIR 1 = reverse, as hal/rp2040/pio_steps.py) ------------------

class _Pin:
    OUT = 1
    IN = 0
    PULL_UP = 2

    def __init__(self, num, mode=None, value=None, pull=None):
        self.num = num
        self.level = value or 0
        self.log = []

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        self.log.append(v)


class _Pwm:
    trains = []

    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        _Pwm.trains.append(freq)
        self.live = True

    def deinit(self):
        self.live = False


class _Timer:
    ONE_SHOT = 0

    def __init__(self, n):
        pass

    def init(self, mode=None, period=0, callback=None):
        self.callback = callback


@pytest.fixture
def esp32_stepper(monkeypatch):
    machine = types.ModuleType("machine")
    machine.Pin, machine.PWM, machine.Timer = _Pin, _Pwm, _Timer
    for name in ("ADC", "I2C", "UART"):
        setattr(machine, name, object)
    monkeypatch.setitem(sys.modules, "machine", machine)
    for mod in [m for m in sys.modules if m == "hal.esp32" or m.startswith("hal.esp32.")]:
        monkeypatch.delitem(sys.modules, mod)
    import hal.esp32
    _Pwm.trains = []
    st = hal.esp32.PwmTimerStepper()
    yield st
    for mod in [m for m in sys.modules if m == "hal.esp32" or m.startswith("hal.esp32.")]:
        del sys.modules[mod]


def test_sr_core_4_esp32_stepper_reverse_sets_dir_and_counts_signed(esp32_stepper):
    st = esp32_stepper
    st.move(100, 100)
    assert st.issued == 0                         # disabled: nothing
    st.enable(True)
    st.move(500, 100)
    assert st.dir.level == 0 and _Pwm.trains[-1] == 5000
    first = st.pwm
    st.move(-300, 100)
    assert st.dir.level == 1 and _Pwm.trains[-1] == 3000
    assert not first.live                         # the forward train stopped before DIR flipped
    assert st.steps_issued() == 200
    st.move(-100, 100)
    assert st.dir.log == [1]                      # DIR written only on a change
    st.move(50, 100)
    assert st.dir.level == 0 and st.steps_issued() == 150
    st.move(0, 100)
    assert st.steps_issued() == 150


# ---- MicroPython portability -------------------------------------------------------------------

def test_micropython_imports_world_and_runs_the_hooks():
    from tests.test_micropython_suite import micropython
    try:
        exe = micropython()
    except Exception as e:                        # pragma: no cover - no unix port built
        pytest.skip("no MicroPython: %s" % e)
    script = ("import sys; sys.path.insert(0, '.')\n"
              "from sim.world import World\n"
              "w = World(encoder_pulses_per_rev=4); w.motor_enabled = True\n"
              "w.set_venous_mmhg(25.0); w.squeeze_line(2.0); w.set_bag_height_cm(-20)\n"
              "w.slip_cam(0.5)\n"
              "w.command_steps(3200, 100); w.advance(100)\n"
              "w.command_steps(-1600, 100); w.advance(100)\n"
              "print(w.mechanism.position_usteps, w.encoder_count, w.steps_total,"
              " w.steps_reverse_total)\n")
    out = subprocess.run([exe, "-c", script], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["800", "3", "1600", "1600"]
