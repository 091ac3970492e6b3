"""Property tests of the safety-core interlocks, on every available backend.

Each test reads like the requirement it verifies (SPEC §5).
"""
import pytest
from hypothesis import given, settings, strategies as st

import safety_core as sc

BACKENDS = [b for b in ("cffi", "reference") if b in sc.available_backends()]
PL = 15625  # nominal 50 uL / 3200 usteps


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def running(backend, rate=10000, vtbi=100000, kvo=0, occ=300, bubble=100, pl=PL):
    core = sc.SafetyCore(pl, backend=backend)
    core.load_program(rate, vtbi, kvo, occlusion_limit_mmhg=occ, bubble_limit_ul=bubble)
    core.start()
    return core


class Feeder:
    """Feeds the heartbeat like a healthy application."""

    def __init__(self, core):
        self.core = core
        self.hb = 0

    def run(self, n_ticks, mmhg=20, air_nl=0, air_present=False):
        self.hb += 1
        return self.core.run(mmhg, air_nl, air_present, self.hb, n_ticks)


# ---- SR-CORE-1 -------------------------------------------------------------
@pytest.mark.parametrize("field,kwargs,needle", [
    ("rate_ul_per_h", dict(rate_ul_per_h=520000), "rate 520.0 mL/h above max 500.0 mL/h"),
    ("rate_ul_per_h", dict(rate_ul_per_h=50), "rate 0.0 mL/h below min 0.1 mL/h"),
    ("rate_ul_per_h", dict(rate_ul_per_h=10050), "not a multiple of 0.1 mL/h"),
    ("vtbi_ul", dict(vtbi_ul=10000000), "VTBI 10000.0 mL above max 9999.0 mL"),
    ("kvo_ul_per_h", dict(kvo_ul_per_h=20100), "KVO rate 20.1 mL/h above max 10.0 mL/h"),
    ("occlusion_limit_mmhg", dict(occlusion_limit_mmhg=1100), "above max 1034 mmHg"),
    ("occlusion_limit_mmhg", dict(occlusion_limit_mmhg=50), "below min 104 mmHg"),
    ("bubble_limit_ul", dict(bubble_limit_ul=20), "below min 50 uL"),
    ("rate_ul_per_h", dict(hard_max_rate_ul_per_h=5000), "rate 10.0 mL/h above max 5.0 mL/h"),
    ("rate_ul_per_h", dict(hard_min_rate_ul_per_h=20000), "rate 10.0 mL/h below min 20.0 mL/h"),
])
def test_refusal_names_field_and_limit_SR_CORE_1(backend, field, kwargs, needle):
    core = sc.SafetyCore(PL, backend=backend)
    prog = dict(rate_ul_per_h=10000, vtbi_ul=100000, kvo_ul_per_h=0)
    prog.update(kwargs)
    with pytest.raises(sc.ProgramRefused) as err:
        core.load_program(**prog)
    assert err.value.field == field
    assert needle in str(err.value)
    assert core.phase == sc.PHASE_IDLE


def test_refused_program_keeps_previous_program_SR_CORE_1(backend):
    core = sc.SafetyCore(PL, backend=backend)
    core.load_program(10000, 50000)
    before = core.snapshot()
    with pytest.raises(sc.ProgramRefused):
        core.load_program(600000, 50000)
    assert core.snapshot() == before


def test_program_change_refused_while_delivering_SR_CORE_1(backend):
    core = running(backend)
    with pytest.raises(sc.ProgramRefused) as err:
        core.load_program(20000, 50000)
    assert err.value.code == sc.ERR_BUSY


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(0, 700000), vtbi=st.integers(0, 11000000))
def test_absolute_limits_enforced_SR_CORE_1(rate, vtbi):
    for backend in BACKENDS:
        core = sc.SafetyCore(PL, backend=backend)
        ok = (100 <= rate <= 500000 and rate % 100 == 0 and 100 <= vtbi <= 9999000)
        try:
            core.load_program(rate, vtbi)
            assert ok
        except sc.ProgramRefused as e:
            assert not ok
            assert e.field in ("rate_ul_per_h", "vtbi_ul")


# ---- accounting: no drift ---------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(rate_dl=st.integers(1, 5000), batches=st.lists(st.integers(1, 100), min_size=1,
                                                      max_size=200),
       pl=st.sampled_from([15625, 15000, 16130, 5000, 100000]))
def test_delivered_equals_integral_of_rate_within_one_microstep(rate_dl, batches, pl):
    rate = rate_dl * 100
    for backend in BACKENDS:
        core = running(backend, rate=rate, vtbi=9999000, pl=pl)
        f = Feeder(core)
        total = sum(f.run(n) for n in batches)
        ticks = sum(batches)
        exact_pl_x18 = rate * ticks * 10 * 5          # integral, units of 1/18 pL
        assert total == exact_pl_x18 // (pl * 18)      # exact floor: error < 1 microstep
        assert core.delivered_steps == total


def test_24h_at_10ml_h_has_no_drift(backend):
    core = running(backend, rate=10000, vtbi=9999000)
    f = Feeder(core)
    for _ in range(24 * 3600):
        f.run(100)
    assert core.delivered_nl() == 240 * 1000 * 1000   # 240 mL exactly


# ---- SR-CORE-2: VTBI and KVO -------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(rate_dl=st.integers(20, 5000), vtbi_frac=st.integers(1, 1000), kvo_dl=st.integers(0, 50),
       batch=st.integers(1, 100))
def test_never_more_than_vtbi_then_kvo_SR_CORE_2(rate_dl, vtbi_frac, kvo_dl, batch):
    rate, kvo = rate_dl * 100, min(kvo_dl * 100, rate_dl * 100)
    vtbi = max(100, rate // 20 * vtbi_frac // 1000)        # at most 3 minutes of infusion
    for backend in BACKENDS:
        core = running(backend, rate=rate, vtbi=vtbi, kvo=kvo)
        f = Feeder(core)
        needed_ticks = vtbi * 3600 * 100 // rate + 200
        done = 0
        while done < needed_ticks:
            f.run(batch)
            done += batch
            assert core.delivered_nl() <= vtbi * 1000
        assert core.delivered_steps == vtbi * 1000000 // PL
        assert core.phase == (sc.PHASE_KVO if kvo else sc.PHASE_COMPLETE)
        kvo_before = core.kvo_steps
        steps = sum(f.run(100) for _ in range(600))   # ten more minutes
        if kvo:
            assert steps == core.kvo_steps - kvo_before
            expected_nl = kvo * 1000 // 6
            assert abs(steps * PL // 1000 - expected_nl) <= PL // 1000 + 1
        else:
            assert steps == 0
        assert core.delivered_nl() <= vtbi * 1000


# ---- SR-CORE-3: downstream occlusion ---------------------------------------
@settings(max_examples=100, deadline=None)
@given(limit=st.integers(104, 1034), over=st.integers(1, 500), cadence=st.integers(1, 100))
def test_pressure_over_limit_stops_after_the_debounce_time_at_any_cadence_SR_CORE_3(
        limit, over, cadence):
    """One sample per call, `cadence` ticks apart (the board samples every 10 ticks,
    the simulator every 100): the stop comes at the first sample at least
    OCCLUSION_DEBOUNCE_TICKS after the first one over the limit, never before."""
    need = -(-sc.OCCLUSION_DEBOUNCE_TICKS // cadence)   # samples after the first one
    for backend in BACKENDS:
        core = running(backend, occ=limit)
        f = Feeder(core)
        f.run(50, mmhg=limit)                  # at the limit: no stop
        assert core.faults == 0
        for _ in range(need):
            f.run(cadence, mmhg=limit + over)
            assert core.faults == 0
        f.run(cadence, mmhg=limit + over)
        assert core.faults & sc.FAULT_OCCLUSION_DOWN
        assert core.phase == sc.PHASE_PAUSED
        assert f.run(1000, mmhg=0) == 0        # stays stopped


@pytest.mark.parametrize("cadence", [10, 100])
def test_short_spikes_do_not_stop_at_either_cadence_SR_CORE_3(backend, cadence):
    """Spikes over the limit for less than the debounce time, at the board's 100 ms and
    the simulator's 1 s sample cadence, never stop the pump."""
    core = running(backend, occ=300)
    f = Feeder(core)
    over = max(1, (sc.OCCLUSION_DEBOUNCE_TICKS - 1) // cadence)   # samples: < 500 ms
    for _ in range(100):
        for _ in range(over):
            f.run(cadence, mmhg=900)
        f.run(cadence, mmhg=30)
    assert core.faults == 0


# ---- SR-CORE-5: air -------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(limit=st.integers(50, 500), split=st.integers(1, 5))
def test_bubble_at_or_over_limit_stops_SR_CORE_5(limit, split):
    for backend in BACKENDS:
        core = running(backend, bubble=limit)
        f = Feeder(core)
        part = limit * 1000 // split
        for _ in range(split):
            f.run(1, air_nl=part, air_present=True)
        f.run(1, air_nl=limit * 1000 - part * split, air_present=True)
        assert core.faults & sc.FAULT_AIR_BUBBLE
        assert f.run(100) == 0


def test_bubble_under_limit_passes_SR_CORE_5(backend):
    core = running(backend, bubble=100)
    f = Feeder(core)
    for _ in range(5):
        f.run(1, air_nl=99000, air_present=True)
        f.run(100)                        # bubble ends: air gone
    assert core.faults == 0


def test_cumulative_air_over_1ml_in_15min_stops_SR_CORE_5(backend):
    core = running(backend, bubble=500)
    f = Feeder(core)
    for _ in range(11):                   # 11 x 95 uL = 1.045 mL within 11 min
        f.run(1, air_nl=95000)
        f.run(6000 - 1)
    assert core.faults & sc.FAULT_AIR_CUMULATIVE


def test_cumulative_air_spread_over_more_than_15min_passes_SR_CORE_5(backend):
    core = running(backend, bubble=500, vtbi=9999000)
    f = Feeder(core)
    for _ in range(40):                   # 90 uL every 2 min: 0.72 mL per 15 min
        f.run(1, air_nl=90000)
        for _ in range(120):
            f.run(100)
    assert core.faults == 0


# ---- SR-CORE-7: heartbeat -------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(stale=st.integers(101, 400))
def test_heartbeat_loss_stops_motor_SR_CORE_7(stale):
    for backend in BACKENDS:
        core = running(backend)
        core.run(20, 0, False, 7, 1)
        steps = core.run(20, 0, False, 7, stale)
        assert core.faults & sc.FAULT_HEARTBEAT
        assert core.fault_tick == 101      # 1 s + one tick after the last feed
        assert steps <= 101 * 3            # only the steps before the stop


def test_heartbeat_fed_every_second_never_stops_SR_CORE_7(backend):
    core = running(backend)
    f = Feeder(core)
    for _ in range(3600):
        f.run(100)
    assert core.faults == 0


# ---- SR-CORE-8: latched until acknowledged and cause gone --------------------------
def test_fault_stays_latched_until_ack_and_cause_gone_SR_CORE_8(backend):
    core = running(backend, occ=300)
    f = Feeder(core)
    f.run(50, mmhg=400)
    f.run(10, mmhg=400)
    assert core.faults == sc.FAULT_OCCLUSION_DOWN
    f.run(1000, mmhg=10)                                  # cause gone, no ack
    assert core.faults == sc.FAULT_OCCLUSION_DOWN
    assert core.acknowledge(400, False, f.hb) == sc.FAULT_OCCLUSION_DOWN  # ack, cause present
    with pytest.raises(sc.CoreRefused):
        core.start()
    assert core.acknowledge(10, False, f.hb) == 0          # ack with cause gone
    assert core.phase == sc.PHASE_PAUSED                  # ack never restarts the motor
    assert f.run(100) == 0
    core.start()
    assert f.run(100) > 0


def test_air_fault_needs_air_gone_SR_CORE_8(backend):
    core = running(backend, bubble=100)
    f = Feeder(core)
    f.run(1, air_nl=150000, air_present=True)
    assert core.acknowledge(10, True, f.hb) & sc.FAULT_AIR_BUBBLE
    assert core.acknowledge(10, False, f.hb) == 0


def test_heartbeat_fault_needs_fresh_heartbeat_SR_CORE_8(backend):
    core = running(backend)
    core.run(0, 0, False, 5, 200)
    assert core.faults & sc.FAULT_HEARTBEAT
    assert core.acknowledge(0, False, 5) & sc.FAULT_HEARTBEAT
    assert core.acknowledge(0, False, 6) == 0


def test_heartbeat_fault_clears_once_the_feed_has_resumed_SR_CORE_8(backend):
    core = running(backend)
    core.run(0, 0, False, 5, 200)                 # application stalled: stop latched
    core.run(0, 0, False, 6, 10)                  # it feeds again (the tick saw it)
    assert core.faults & sc.FAULT_HEARTBEAT       # still latched: no self-clearing
    assert core.acknowledge(0, False, 6) == 0     # ack with the same, recent heartbeat


@pytest.mark.parametrize("kwargs,needle", [
    (dict(rate_ul_per_h=-100), "rate -0.1 mL/h below min 0.0 mL/h [rate_ul_per_h]"),
    (dict(vtbi_ul=2 ** 40), "[vtbi_ul]"),
    (dict(bubble_limit_ul=-1), "[bubble_limit_ul]"),
])
def test_values_outside_the_c_types_are_refused_by_name_SR_CORE_1(backend, kwargs, needle):
    core = sc.SafetyCore(PL, backend=backend)
    prog = dict(rate_ul_per_h=10000, vtbi_ul=100000)
    prog.update(kwargs)
    with pytest.raises(sc.ProgramRefused) as err:
        core.load_program(**prog)
    assert needle in str(err.value)
    assert core.phase == sc.PHASE_IDLE
