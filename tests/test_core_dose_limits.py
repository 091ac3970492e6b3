"""Dose limits in channel A (SR-CORE-2, SR-TH-1): rolling-hour cap, 4 h maximum, PCA
lockout and hourly count, clinician bolus, rate segments and prime, on every backend.

The properties drive the core as the firmware does (100 ticks per 1 s cycle, a fresh
heartbeat each cycle) and check the rule against an independent sliding-window sum of
what the motor was commanded, minute by minute.
"""
import pytest
from hypothesis import given, settings, strategies as st

import safety_core as sc

PL = 15625
TICKS_PER_S = 100


@pytest.fixture(params=sc.available_backends())
def backend(request):
    return request.param


def core_with(backend, rate=1000, vtbi=100000, **limits):
    core = sc.SafetyCore(PL, backend=backend)
    core.load_program(rate, vtbi, **limits)
    core.start()
    return core


class Clock:
    """Runs the core second by second, recording steps per second."""

    def __init__(self, core):
        self.core = core
        self.hb = 0
        self.per_s = []

    def run_s(self, seconds, mmhg=20, air_nl=0, air_present=False):
        for _ in range(seconds):
            self.hb += 1
            self.per_s.append(self.core.run(mmhg, air_nl, air_present, self.hb, TICKS_PER_S))
            air_nl = 0

    def max_window_steps(self, seconds):
        best = run = 0
        for i, n in enumerate(self.per_s):
            run += n
            if i >= seconds:
                run -= self.per_s[i - seconds]
            best = max(best, run)
        return best


def steps_of(ul):
    return ul * 1000000 // PL


@settings(max_examples=60, deadline=None)
@given(rate_frac=st.integers(0, 100), bolus=st.integers(2, 20).map(lambda k: k * 100),
       cap_mult=st.integers(2, 6), lockout_s=st.integers(60, 900),
       presses=st.lists(st.integers(0, 3 * 3600), min_size=1, max_size=60))
def test_rolling_hour_cap_and_pca_maxima_never_exceeded_SR_CORE_2(rate_frac, bolus, cap_mult,
                                                                   lockout_s, presses):
    cap_1h = bolus * cap_mult
    cap_4h = cap_1h * 4 - bolus          # tighter than four full hours
    rate = (cap_4h // 4 * rate_frac // 100) // 100 * 100 or 100
    core = sc.SafetyCore(PL, backend="cffi" if "cffi" in sc.available_backends()
                         else "reference")
    core.load_program(rate, 9000000 // 1000, max_1h_ul=cap_1h, max_4h_ul=cap_4h,
                      bolus_ul=bolus, bolus_rate_ul_per_h=100000, lockout_s=lockout_s,
                      max_boluses_per_h=4)
    core.start()
    clock = Clock(core)
    granted_at = []
    t = 0
    for at in sorted(presses):
        clock.run_s(at - t)
        t = at
        if core.bolus() == sc.BOLUS_GRANTED:
            granted_at.append(at)
    clock.run_s(3 * 3600 + 600 - t)
    assert clock.max_window_steps(3600) <= steps_of(cap_1h)
    assert clock.max_window_steps(4 * 3600) <= steps_of(cap_4h)
    for a, b in zip(granted_at, granted_at[1:]):
        assert b - a >= lockout_s                      # lockout from the last granted bolus
    for i in range(len(granted_at)):
        assert sum(1 for g in granted_at if granted_at[i] <= g < granted_at[i] + 3600) <= 4
    denied = core.field("boluses_denied")
    assert denied == len(presses) - len(granted_at)    # every denial counted


def test_press_inside_lockout_is_denied_and_counted_SR_CORE_2(backend):
    core = core_with(backend, rate=1000, bolus_ul=500, bolus_rate_ul_per_h=50000, lockout_s=600)
    clock = Clock(core)
    assert core.bolus() == sc.BOLUS_GRANTED
    clock.run_s(599)
    assert core.bolus() == sc.BOLUS_DENIED_LOCKOUT
    assert core.field("boluses_denied") == 1 and core.field("last_denial") == sc.BOLUS_DENIED_LOCKOUT
    clock.run_s(1)
    assert core.bolus() == sc.BOLUS_GRANTED
    assert core.field("patient_boluses") == 2


def test_bolus_volume_is_exact_on_top_of_the_basal_SR_TH_1(backend):
    core = core_with(backend, rate=1000, bolus_ul=1000, bolus_rate_ul_per_h=100000, lockout_s=60)
    clock = Clock(core)
    clock.run_s(60)
    basal_60s = core.delivered_steps
    assert core.bolus() == sc.BOLUS_GRANTED
    clock.run_s(60)        # the bolus takes 36 s at 100 mL/h
    assert core.field("bolus_left_steps") == 0
    assert core.delivered_steps - 2 * basal_60s in (steps_of(1000), steps_of(1000) + 1,
                                                    steps_of(1000) - 1)


def test_max_boluses_per_hour_SR_CORE_2(backend):
    core = core_with(backend, rate=100, bolus_ul=100, bolus_rate_ul_per_h=100000, lockout_s=60,
                     max_boluses_per_h=3)
    clock = Clock(core)
    answers = []
    for _ in range(5):
        answers.append(core.bolus())
        clock.run_s(61)
    assert answers == [0, 0, 0, sc.BOLUS_DENIED_COUNT, sc.BOLUS_DENIED_COUNT]
    clock.run_s(3600)
    assert core.bolus() == sc.BOLUS_GRANTED


def test_1h_and_4h_maxima_deny_a_bolus_that_would_pass_them_SR_CORE_2(backend):
    core = core_with(backend, rate=100, bolus_ul=1000, bolus_rate_ul_per_h=100000, lockout_s=60,
                     max_1h_ul=2000)
    clock = Clock(core)
    assert core.bolus() == sc.BOLUS_GRANTED
    clock.run_s(61)
    assert core.bolus() == sc.BOLUS_DENIED_1H
    core = core_with(backend, rate=100, bolus_ul=1000, bolus_rate_ul_per_h=100000, lockout_s=60,
                     max_4h_ul=2500)
    clock = Clock(core)
    got = []
    for _ in range(3):
        got.append(core.bolus())
        clock.run_s(3700)
    assert got == [0, 0, sc.BOLUS_DENIED_4H]


def test_a_new_program_keeps_the_rolling_hour_SR_CORE_2(backend):
    """Reprogramming is not a way around the cap: the windows survive a new program."""
    core = core_with(backend, rate=5000, vtbi=5000, max_1h_ul=5000)
    clock = Clock(core)
    clock.run_s(3000)
    core.pause()
    core.load_program(5000, 5000, max_1h_ul=5000)
    core.start()
    clock.run_s(1200)
    assert clock.max_window_steps(3600) <= steps_of(5000)
    assert core.field("capped_ticks") > 0


def test_clinician_bolus_skips_lockout_not_the_maxima_SR_TH_1(backend):
    core = core_with(backend, rate=1000, bolus_ul=500, bolus_rate_ul_per_h=50000, lockout_s=900,
                     max_1h_ul=3000)
    assert core.bolus() == sc.BOLUS_GRANTED
    Clock(core).run_s(60)
    assert core.bolus(sc.BOLUS_CLINICIAN, 1000) == sc.BOLUS_GRANTED     # no lockout for it
    Clock(core).run_s(100)
    assert core.bolus(sc.BOLUS_CLINICIAN, 2000) == sc.BOLUS_DENIED_1H
    assert core.bolus(sc.BOLUS_CLINICIAN, 60000) == sc.BOLUS_DENIED_SIZE


def test_pause_and_faults_cancel_the_rest_of_a_bolus_SR_CORE_2(backend):
    core = core_with(backend, rate=1000, bolus_ul=2000, bolus_rate_ul_per_h=50000, lockout_s=60)
    assert core.bolus() == sc.BOLUS_GRANTED
    Clock(core).run_s(10)
    core.pause()
    assert core.field("bolus_left_steps") == 0
    core.start()
    assert core.bolus() == sc.BOLUS_DENIED_LOCKOUT       # the lockout still runs
    Clock(core).run_s(60)
    assert core.bolus() == sc.BOLUS_GRANTED
    Clock(core).run_s(2, mmhg=1000)                      # occlusion stop
    assert core.faults & sc.FAULT_OCCLUSION_DOWN and core.field("bolus_left_steps") == 0


def test_segments_add_up_to_the_vtbi_to_the_microstep_SR_TH_1(backend):
    core = sc.SafetyCore(PL, backend=backend)
    core.load_program(10000, 3000)
    core.set_rate(10000, 1000)
    core.start()
    clock = Clock(core)
    clock.run_s(400)
    assert core.field("segment_held") == 1 and core.delivered_steps == steps_of(1000)
    held = core.delivered_steps
    clock.run_s(30)
    assert core.delivered_steps == held                   # held until the next segment
    assert core.bolus() == sc.BOLUS_DENIED_NOT_RUNNING
    core.set_rate(50000, 2500)
    clock.run_s(200)
    assert core.delivered_steps == steps_of(2500)
    with pytest.raises(sc.ProgramRefused) as e:
        core.set_rate(50000, 2000)                        # already delivered
    assert "already delivered" in str(e.value)
    core.set_rate(100, 0)
    clock.run_s(3600 * 6)
    assert core.delivered_steps == steps_of(3000) and core.phase == sc.PHASE_COMPLETE


def test_rate_change_is_checked_like_the_program_SR_CORE_1(backend):
    core = core_with(backend, rate=10000, vtbi=5000, kvo_ul_per_h=1000,
                     hard_max_rate_ul_per_h=20000, max_1h_ul=30000)
    with pytest.raises(sc.ProgramRefused) as e:
        core.set_rate(25000)
    assert e.value.field == "rate_ul_per_h" and e.value.limit == 20000
    with pytest.raises(sc.ProgramRefused):
        core.set_rate(10050)                              # off the 0.1 mL/h grid
    with pytest.raises(sc.ProgramRefused) as e:
        core.set_rate(500)                                # below the KVO rate
    assert e.value.limit == 1000
    before = core.snapshot()
    with pytest.raises(sc.ProgramRefused):
        core.set_rate(10000, 6000)                        # beyond the VTBI
    assert core.snapshot() == before                      # nothing changed


def test_prime_ignores_air_is_not_counted_and_is_bounded_SR_CORE_5(backend):
    core = sc.SafetyCore(PL, backend=backend)
    with pytest.raises(sc.ProgramRefused) as e:
        core.load_program(300000, 31000, flags=sc.FLAG_PRIME)
    assert e.value.field == "vtbi_ul" and e.value.limit == sc.PRIME_MAX_UL
    core.load_program(300000, 20000, flags=sc.FLAG_PRIME)
    core.start()
    clock = Clock(core)
    clock.run_s(60, air_nl=2000000, air_present=True)     # 2 mL of air pushed out
    clock.run_s(300)
    assert core.faults == 0 and core.phase == sc.PHASE_COMPLETE
    assert core.window_ul() == 0                          # not given to a patient
    core.load_program(10000, 10000, max_1h_ul=10000)      # the therapy after the prime
    core.start()
    clock.run_s(1, air_nl=150000, air_present=True)
    assert core.faults & sc.FAULT_AIR_BUBBLE              # air stops armed again


def test_dose_limit_refusals_name_the_field_SR_CORE_1(backend):
    core = sc.SafetyCore(PL, backend=backend)
    cases = [
        (dict(bolus_ul=500, bolus_rate_ul_per_h=50000, lockout_s=30), "lockout", 60),
        (dict(bolus_ul=60000, bolus_rate_ul_per_h=50000, lockout_s=60), "bolus", 50000),
        (dict(bolus_ul=500, lockout_s=60), "bolus_rate", 100),
        (dict(lockout_s=60), "lockout", 0),
        (dict(max_1h_ul=600000), "max_1h", 500000),
        (dict(max_1h_ul=500), "rate", 500),
        (dict(bolus_ul=500, bolus_rate_ul_per_h=50000, lockout_s=60, max_boluses_per_h=61),
         "boluses", 60),
        (dict(flags=2), "flags", 1),
    ]
    for kw, needle, limit in cases:
        with pytest.raises(sc.ProgramRefused) as e:
            core.load_program(1000, 10000, **kw)
        assert needle in e.value.field and e.value.limit == limit, (kw, str(e.value))
