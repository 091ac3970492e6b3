"""Therapy modes on the sim HAL (SR-TH-1, SR-CORE-2): each mode's phases add up to its
volume to the microstep, boluses go through the core, delayed start, early taper-down,
refusals that name the field, power-loss resume of a mode, events logged.

Portable: runs under pytest (CPython, C core) and under MicroPython (reference core).
Short plans (minutes, not the clinical hours) keep the MicroPython run quick; the
clinical scenarios are in sim/scenarios/ (tests/test_scenario_data.py).
"""
import safety_core as sc
from firmware import events
from firmware.eventlog import decode
from firmware.therapy import TherapyError
from hal import KEY_BOLUS, KEY_RUN_STOP
from tests.mpy.test_app import make_pump, run_for

PL = 15625


def steps_of(ul):
    return ul * 1000000 // PL


def logged(app, code):
    """(a, b) of every record of one event code."""
    out = []
    for r in app.log.read(1, 100000):
        rec = decode(r)
        if rec[1] == code:
            out.append((rec[4], rec[5]))
    return out


def run_mode(spec, seconds):
    app, world, hal = make_pump()
    mode = app.program_therapy(spec)
    app.start()
    run_for(app, world, seconds)
    return app, mode, world, hal


def assert_exact(app, mode):
    """The whole plan delivered to the microstep, each phase exactly its volume."""
    assert app.core.delivered_steps == steps_of(mode.total_ul), (app.core.delivered_steps,
                                                                 mode.total_ul)
    for ph in mode.report()["phases"]:
        assert ph["delivered_ul"] == ph["programmed_ul"], ph


def test_intermittent_doses_with_kvo_between_SR_TH_1():
    spec = {"mode": "intermittent", "dose_ul": 5000, "dose_rate_ul_per_h": 100000,
            "interval_s": 600, "doses": 3, "kvo_ul_per_h": 5000}
    app, mode, world, hal = run_mode(spec, 1500)
    names = [ph["name"] for ph in mode.report()["phases"]]
    assert names == ["DOSE 1", "KVO 1", "DOSE 2", "KVO 2", "DOSE 3"]
    assert_exact(app, mode)
    assert app.core.phase == sc.PHASE_KVO            # keeps the vein open after the last dose
    rates = [a for a, b in logged(app, events.RATE_CHANGED)]
    assert rates == [100000, 5000, 100000, 5000, 100000]
    # the second dose starts one interval after the first, to within a cycle or two
    assert logged(app, events.THERAPY_MODE) == [(1, 5)]


def test_tpn_tapers_and_plateau_add_up_to_the_bag_SR_TH_1():
    spec = {"mode": "tpn", "vtbi_ul": 20000, "duration_s": 3600, "taper_up_s": 600,
            "taper_down_s": 600}
    app, mode, world, hal = run_mode(spec, 3700)
    phases = mode.report()["phases"]
    assert [p["name"] for p in phases][:4] == ["TAPER UP 1", "TAPER UP 2", "TAPER UP 3",
                                               "TAPER UP 4"]
    rates = [p["rate_ul_per_h"] for p in phases]
    plateau = rates[4]
    assert rates[:4] == sorted(rates[:4]) and max(rates) == plateau
    assert rates[5:] == sorted(rates[5:], reverse=True)
    assert_exact(app, mode)
    assert app.core.phase == sc.PHASE_COMPLETE


def test_tpn_early_taper_down_ends_the_bag_early_and_is_logged_SR_TH_1():
    spec = {"mode": "tpn", "vtbi_ul": 20000, "duration_s": 3600, "taper_up_s": 600,
            "taper_down_s": 600}
    app, mode, world, hal = run_mode(spec, 1200)
    not_given = app.early_taper_down()
    assert not_given > 0
    assert app.mode is not mode and app.mode.spec["mode"] == "steps"   # what a cut resumes
    run_for(app, world, 900)
    rep = app.mode.report()
    assert rep["phases"][-1]["name"].startswith("TAPER DOWN")
    assert app.core.phase == sc.PHASE_COMPLETE
    assert rep["delivered_ul"] + not_given in (20000, 19999)  # what ran + what never will
    assert logged(app, events.TAPER_DOWN_EARLY)[0][0] == not_given
    try:
        app.early_taper_down()
        assert False, "a second early taper-down is refused"
    except TherapyError as e:
        assert "taper" in str(e)


def test_step_profile_up_to_24_steps_SR_TH_1():
    steps = [[(i + 1) * 10000, 100] for i in range(24)]
    app, mode, world, hal = run_mode({"mode": "steps", "steps": steps}, 300)
    assert len(mode.report()["phases"]) == 24
    assert_exact(app, mode)
    try:
        app.program_therapy({"mode": "steps", "steps": steps + [[1000, 100]]})
        assert False, "25 steps refused"
    except TherapyError as e:
        assert "steps" in str(e) and "24" in str(e)


def test_pca_presses_through_the_bolus_key_lockout_denied_and_logged_SR_TH_1_SR_CORE_2():
    spec = {"mode": "pca", "basal_ul_per_h": 1000, "bolus_ul": 500,
            "bolus_rate_ul_per_h": 60000, "lockout_s": 300, "max_boluses_per_h": 3,
            "max_1h_ul": 3000, "max_4h_ul": 8000, "vtbi_ul": 50000}
    app, mode, world, hal = run_mode(spec, 10)
    hal.buttons.press(KEY_BOLUS, bounces=3)         # a bouncy press is one press
    run_for(app, world, 2)
    assert mode.granted == 1
    hal.buttons.press(KEY_BOLUS)                    # while the bolus runs (30 s)
    run_for(app, world, 60)
    hal.buttons.press(KEY_BOLUS)                    # after it, inside the lockout
    run_for(app, world, 2)
    assert mode.report()["boluses_denied"] == {"in_progress": 1, "lockout": 1}
    assert app.core.field("boluses_denied") == 2
    run_for(app, world, 300)
    hal.buttons.press(KEY_BOLUS)
    run_for(app, world, 2)
    assert mode.granted == 2
    assert [a for a, b in logged(app, events.BOLUS_REQUESTED)] == [0, 0, 0, 0]
    assert len(logged(app, events.BOLUS_GRANTED)) == 2
    assert logged(app, events.BOLUS_DENIED) == [(sc.BOLUS_DENIED_IN_PROGRESS, 0),
                                                (sc.BOLUS_DENIED_LOCKOUT, 0)]


def test_bolus_key_does_nothing_outside_pca():
    app, mode, world, hal = run_mode({"mode": "continuous", "rate_ul_per_h": 10000,
                                      "vtbi_ul": 5000}, 5)
    hal.buttons.press(KEY_BOLUS)
    run_for(app, world, 2)
    assert logged(app, events.BOLUS_REQUESTED) == []


def test_clinician_bolus_in_pca_SR_TH_1():
    spec = {"mode": "pca", "basal_ul_per_h": 1000, "bolus_ul": 500,
            "bolus_rate_ul_per_h": 60000, "lockout_s": 600, "max_1h_ul": 3000,
            "vtbi_ul": 50000}
    app, mode, world, hal = run_mode(spec, 5)
    assert app.request_bolus() == sc.BOLUS_GRANTED
    assert app.request_bolus(sc.BOLUS_CLINICIAN, 1000) == sc.BOLUS_DENIED_IN_PROGRESS
    run_for(app, world, 60)
    assert app.request_bolus(sc.BOLUS_CLINICIAN, 1000) == sc.BOLUS_GRANTED   # no lockout
    run_for(app, world, 120)
    assert app.request_bolus(sc.BOLUS_CLINICIAN, 2000) == sc.BOLUS_DENIED_1H
    assert app.core.window_ul() <= 3000


def test_delayed_start_waits_then_starts_by_itself_SR_TH_1():
    app, world, hal = make_pump()
    app.program_therapy({"mode": "continuous", "rate_ul_per_h": 36000, "vtbi_ul": 1000,
                         "start_delay_s": 120})
    app.start()
    assert app.status()["mode_phase"] == "DELAYED START"
    run_for(app, world, 119)
    assert app.core.delivered_steps == 0 and app.core.phase == sc.PHASE_READY
    run_for(app, world, 2)
    assert app.core.phase == sc.PHASE_RUNNING
    assert logged(app, events.THERAPY_DELAYED) == [(120, 0)]
    assert len(logged(app, events.THERAPY_STARTED)) == 1


def test_prime_then_therapy_SR_TH_1():
    app, mode, world, hal = run_mode({"mode": "prime", "volume_ul": 5000}, 90)
    assert app.core.phase == sc.PHASE_COMPLETE and app.core.delivered_steps == steps_of(5000)
    assert app.core.window_ul() == 0                 # not given to the patient
    app.acknowledge()
    app.program_therapy({"mode": "continuous", "rate_ul_per_h": 10000, "vtbi_ul": 1000})
    app.start()
    run_for(app, world, 5)
    assert app.core.phase == sc.PHASE_RUNNING


def test_refusals_name_the_field_and_keep_the_previous_program():
    app, world, hal = make_pump()
    app.program_therapy({"mode": "continuous", "rate_ul_per_h": 10000, "vtbi_ul": 5000})
    bad = [
        ({"mode": "bolus"}, "mode"),
        ({"mode": "intermittent", "dose_ul": 5000, "dose_rate_ul_per_h": 1000,
          "interval_s": 600, "doses": 2, "kvo_ul_per_h": 500}, "interval_s"),
        ({"mode": "intermittent", "dose_ul": 5000, "dose_rate_ul_per_h": 100000,
          "interval_s": 3600, "doses": 2}, "kvo_ul_per_h"),
        ({"mode": "steps", "steps": [[1050, 100]]}, "STEP 1"),
        ({"mode": "continuous", "rate_ul_per_h": "10", "vtbi_ul": 5000}, "rate_ul_per_h"),
        ({"mode": "pca", "basal_ul_per_h": 1000, "bolus_ul": 500, "bolus_rate_ul_per_h": 60000,
          "lockout_s": 10, "vtbi_ul": 50000}, "lockout"),
        ({"mode": "prime", "volume_ul": 40000}, "vtbi_ul"),
        ({"mode": "tpn", "vtbi_ul": 20000, "duration_s": 3600, "taper_up_s": 2000,
          "taper_down_s": 2000}, "duration_s"),
    ]
    for spec, field in bad:
        try:
            app.program_therapy(spec)
            assert False, spec
        except sc.CoreRefused as e:
            assert field in str(e), (spec, str(e))
        assert app.program[1] == 5000 and app.mode.NAME == "continuous"


def test_resume_after_power_loss_continues_the_plan_SR_TH_5():
    spec = {"mode": "steps", "steps": [[36000, 1000], [72000, 2000], [36000, 1000]]}
    app, mode, world, hal = run_mode(spec, 130)       # into the second step
    delivered = app.core.delivered_ul()
    assert 1000 < delivered < 3000
    app2, world2, hal2 = make_pump()
    mode2 = app2.resume_therapy(mode.spec, mode.snapshot(), delivered)
    app2.start()
    run_for(app2, world2, 400)
    assert mode2.base_ul == delivered
    lag = app2.progress.lag_ul(72000)        # counted as given: never a volume twice
    assert delivered + lag + app2.core.delivered_ul() == 4000
    assert [p["name"] for p in mode2.report()["phases"]] == ["STEP 2", "STEP 3"]


def test_resumed_pca_keeps_its_lockout_and_rolling_hour_SR_CORE_2_SR_TH_5():
    """A power cut is not a way around the PCA limits: the resumed core starts with the
    record's last hour in its windows and a full lockout."""
    spec = {"mode": "pca", "basal_ul_per_h": 500, "bolus_ul": 1000, "bolus_rate_ul_per_h": 60000,
            "lockout_s": 600, "max_boluses_per_h": 2, "max_1h_ul": 2000, "vtbi_ul": 50000}
    app, mode, world, hal = run_mode(spec, 5)
    assert app.request_bolus() == sc.BOLUS_GRANTED
    run_for(app, world, 120)
    snap = mode.snapshot()
    assert snap["w1h_ul"] >= 1000 and snap["b1h"] == 1
    app2, world2, hal2 = make_pump()                 # the battery was pulled
    app2.resume_therapy(mode.spec, snap, app.core.delivered_ul())
    app2.start()
    assert app2.request_bolus() == sc.BOLUS_DENIED_LOCKOUT
    run_for(app2, world2, 601)
    assert app2.request_bolus() == sc.BOLUS_DENIED_1H    # 1 mL + basal + 1 mL > 2 mL
    assert app2.core.window_ul() >= snap["w1h_ul"]


def test_prime_is_never_resumed_SR_TH_5():
    app, mode, world, hal = run_mode({"mode": "prime", "volume_ul": 20000}, 10)
    app2, world2, hal2 = make_pump()
    try:
        app2.resume_therapy(mode.spec, mode.snapshot(), app.core.delivered_ul())
        assert False, "a prime is never resumed"
    except TherapyError as e:
        assert "prime" in str(e)


def test_run_stop_cancels_a_delayed_start_and_the_rate_shown_follows_the_segment():
    app, world, hal = make_pump()
    app.program_therapy({"mode": "steps", "steps": [[36000, 100], [72000, 1000]],
                         "start_delay_s": 60})
    app.start()
    hal.buttons.press(KEY_RUN_STOP)
    run_for(app, world, 120)
    assert app.core.phase == sc.PHASE_READY and app.mode.start_at_ms is None
    assert logged(app, events.THERAPY_DELAYED) == [(60, 0), (0, 1)]
    app.mode.start_delay_s = 0
    app.start()
    run_for(app, world, 30)
    assert app.status()["rate_ul_per_h"] == 72000        # the second step runs


def test_pca_limits_come_from_the_drug_library_SR_TH_1_SR_LIB_4():
    """Morphine 1 mg/mL in the fixture: max bolus 2 mg, lockout >= 6 min, <= 6 per hour,
    10 mg per hour, 30 mg per 4 h, hard max 10 mg/h (tests/fixtures/library_small.json)."""
    from tests.mpy import library_pump
    app, world, hal = library_pump.make_pump()
    ref = {"care_area": "Adult home", "drug_id": 401}
    base = {"mode": "pca", "basal_ul_per_h": 1000, "bolus_ul": 1000, "bolus_rate_ul_per_h": 60000,
            "lockout_s": 600, "vtbi_ul": 100000, "library": ref}
    mode = app.program_therapy(base)
    args = mode.core_args
    assert (args["max_1h_ul"], args["max_4h_ul"], args["max_boluses_per_h"]) == (10000, 30000, 6)
    assert args["hard_max_rate_ul_per_h"] == 10000 and mode.drug_id == 401
    for key, value, field in (("bolus_ul", 3000, "bolus_ul"), ("lockout_s", 300, "lockout_s"),
                              ("max_1h_ul", 12000, "max_1h_ul"),
                              ("basal_ul_per_h", 12000, "rate")):
        spec = dict(base)
        spec[key] = value
        try:
            app.program_therapy(spec)
            assert False, key
        except sc.CoreRefused as e:
            assert field in str(e) or field in getattr(e, "field", ""), (key, str(e))
    spec = dict(base)
    spec["library"] = {"care_area": "Adult home", "drug_id": 601}     # no PCA limits
    try:
        app.program_therapy(spec)
        assert False
    except TherapyError as e:
        assert "no PCA limits" in str(e)
    app.set_library(None)
    try:
        app.program_therapy(base)
        assert False
    except TherapyError as e:
        assert "no drug library" in str(e)
