"""The PT-4 / PT-5 bench harness itself (tests/bench/occlusion_harness.py): the release-bolus
metric on synthetic traces, one short occlusion run that must alarm, the no-alarm path, the
false-alarm schedule's reproducibility and one bubble run.  Fast (a few seconds)."""
import pytest

from tests.bench import occlusion_harness as oh
from tests.bench import pt4_false_alarms as fa
from tests.bench import pt5_air
from sim.presets import COMPLIANCE_UL_PER_MMHG


def _trace(step_ms, n, volume, running):
    """[(t, volume(t), running(t))] for t = 0, step, ..., n*step."""
    return [(i * step_ms, volume(i * step_ms), running(i * step_ms)) for i in range(n + 1)]


def test_release_bolus_pump_stopped_counts_everything():
    # the line gives back 120 uL in the first 10 s, nothing after; pump stopped throughout
    tr = _trace(1000, 300, lambda t: 1000.0 + min(t, 10000) * 0.012, lambda t: False)
    excess, patient, run_s = oh.release_bolus_ul(tr, 3600)
    assert run_s == 0.0
    assert patient == pytest.approx(120.0)
    assert excess == pytest.approx(120.0)


def test_release_bolus_running_pump_subtracts_the_rate():
    # 3600 uL/h = 1 uL/s for the whole 300 s, plus 40 uL stored volume released
    tr = _trace(1000, 300, lambda t: t / 1000.0 + min(t, 5000) * 0.008, lambda t: True)
    excess, patient, run_s = oh.release_bolus_ul(tr, 3600)
    assert run_s == pytest.approx(300.0)
    assert patient == pytest.approx(340.0)
    assert excess == pytest.approx(40.0)


def test_release_bolus_partial_running_and_window_end():
    # 100 ms samples, running only during [100 s, 160 s): 60 s at 1 uL/s; trace goes past 300 s
    tr = _trace(100, 4000, lambda t: 5.0 + min(max(t - 100000, 0), 60000) / 1000.0,
                lambda t: 100000 <= t < 160000)
    excess, patient, run_s = oh.release_bolus_ul(tr, 3600)
    assert run_s == pytest.approx(60.0)
    assert patient == pytest.approx(60.0)
    assert excess == pytest.approx(0.0, abs=1e-9)
    # a custom window stops counting at its end, mid-interval
    excess, patient, run_s = oh.release_bolus_ul(tr, 3600, window_s=130)
    assert run_s == pytest.approx(30.0)
    assert excess == pytest.approx(0.0, abs=1e-9)


def test_release_bolus_refuses_a_short_trace():
    with pytest.raises(ValueError):
        oh.release_bolus_ul(_trace(1000, 200, lambda t: 0.0, lambda t: False), 1000)
    with pytest.raises(ValueError):
        oh.release_bolus_ul([], 1000)


@pytest.mark.parametrize("cycle_ms", [1000, 100])
def test_occlusion_at_100_ml_h_alarms_and_release_is_measured(cycle_ms):
    r = oh.occlusion_run(100000, 300, "picc", cycle_ms, pre_run_s=60)
    assert r["alarm_s"] is not None and 0 < r["alarm_s"] <= 60      # ~13 s today
    assert r["stopped"]                      # the alarm stopped delivery, nobody restarted it
    assert r["release_run_s"] == 0.0
    # the bolus is at most the volume the line stored (compliance x the pressure reached)
    stored = COMPLIANCE_UL_PER_MMHG * r["peak_mmhg"]
    assert -stored < r["release_bolus_ul"] <= stored + 1.0
    assert r["release_bolus_ul"] == pytest.approx(r["release_patient_ul"])


def test_no_alarm_release_is_still_reported():
    # 0.5 mL/h against 1034 mmHg, capped at 2 min: no alarm; the pump runs through the window
    r = oh.occlusion_run(500, 1034, "picc", 1000, pre_run_s=60, max_wait_s=120)
    assert r["alarm_s"] is None
    assert not r["stopped"]
    assert r["release_run_s"] == pytest.approx(300.0)
    # excess = what the line stored during the 2 min clamp (~17 uL), give or take the cam
    assert 0.0 < r["release_bolus_ul"] < 60.0


def test_false_alarm_schedule_is_reproducible_and_complete():
    a = fa.schedule(10000, seed=7)
    assert a == fa.schedule(10000, seed=7)
    assert a != fa.schedule(10000, seed=8)
    kinds = set(e[2] for e in a)
    assert {fa.VENOUS, fa.RATE, fa.BAG} <= kinds
    assert [e[0] for e in a] == sorted(e[0] for e in a)
    base = 5.0                                    # picc venous pressure
    assert all(e[3] in (base - 20, base, base + 20) for e in a if e[2] == fa.VENOUS)
    assert all(-50 <= e[3] <= 60 for e in a if e[2] == fa.BAG)
    lies = [e[0] for e in a if e[2] == fa.LIE]
    unlies = [e[0] for e in a if e[2] == fa.UNLIE]
    assert [t + fa.LYING_S for t in lies] == unlies


def test_false_alarm_run_applies_events():
    r = fa.false_alarm_run(10000, 300, duration_s=3 * 3600, seed=3)
    assert r["events"][fa.VENOUS] > 0
    assert not r["event_errors"]
    assert r["delivered_ul"] > 0


def test_bubble_well_over_the_limit_is_caught():
    r = pt5_air.air_run(100000, 200.0)
    assert r["caught"] and r["alarm"] is not None
    assert r["air_passed_ul"] < 200.0
