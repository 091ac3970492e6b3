"""Programming from the drug library (SR-TH-3, SR-TH-4, SR-LIB-4, SR-CORE-1, SR-AL-1):
exact dose -> rate conversion for every dose unit, the stated rounding rule, hard limits
refused by the application and by the safety core when the application is bypassed, soft
limits confirmed, logged and shown as a LOW alarm, every refusal reason in words, basic
infusion rules, the therapy context on the log, status and display.

Portable: CPython and MicroPython (tests/mpy/run.py).  Library: tests/fixtures/
library_small.bin (content in library_small.json).
"""
import safety_core as sc
from firmware import alarms as al
from firmware import events as ev
from firmware import programming as pg
from firmware import ui
from tests.mpy.library_pump import events, make_pump, open_library, run_for

ADULT = "Adult home"
INOTROPES = "Inotropes"
MIXED = "Mixed units"
VANCO = 101
PENICILLIN = 105
MORPHINE = 401
NACL = 601
MILRINONE = 701
DOBUTAMINE = 702
EPOPROSTENOL = 703
IVIG = 501
KCL = 602
FENTANYL = 403


def _refusal(app, *args, **kw):
    try:
        app.program_from_library(*args, **kw)
    except pg.ProgramError as e:
        return e
    assert False, "program %r accepted" % (args,)


def _spy_core(app):
    calls = []
    orig = app.core.load_program

    def load_program(*a):
        calls.append(a)
        return orig(*a)
    app.core.load_program = load_program
    return calls


# ---- conversions: every dose unit, exact (SR-TH-3) -----------------------------------------

def test_mg_per_h_converts_exactly_both_concentrations_SR_TH_3():
    app, world, h = make_pump()
    p = app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 250000)   # 5 mg/mL
    assert p.rate_ul_per_h == 100000 and p.delivered_exact and p.delivered == 500000
    p = app.program_from_library(ADULT, VANCO, 1, 500000, "mg/h", 250000)   # 1000 mg/250 mL
    assert p.rate_ul_per_h == 125000
    assert app.program[0] == 125000


def test_units_per_h_mcg_per_h_mmol_per_h_ml_per_h_convert_exactly_SR_TH_3():
    app, world, h = make_pump()
    # 1,000,000 units/h of 100,000 units/mL = 10 mL/h
    assert app.program_from_library(ADULT, PENICILLIN, None, 1000000000, "units/h",
                                    100000).rate_ul_per_h == 10000
    # 50 mcg/h of 10 mcg/mL = 5 mL/h
    assert app.program_from_library(MIXED, FENTANYL, None, 50000, "mcg/h",
                                    100000).rate_ul_per_h == 5000
    # 2.5 mmol/h of 20 mmol/1000 mL = 125 mL/h
    assert app.program_from_library(MIXED, KCL, None, 2500, "mmol/h",
                                    100000).rate_ul_per_h == 125000
    # mL/h is the rate itself; the code of the unit is accepted as well as its text
    p = app.program_from_library(ADULT, NACL, None, 125000, 1, 100000)
    assert p.rate_ul_per_h == 125000 and p.dose_line == ""


def test_mcg_per_kg_per_min_with_weight_converts_exactly_SR_TH_3():
    app, world, h = make_pump()
    # Milrinone 0.375 mcg/kg/min, 70 kg, 200 mcg/mL: 0.375 * 70 * 60 / 200 = 7.875 mL/h
    num, den = pg.rate_factor(app.library.find(1, MILRINONE, 3, 200000, 1000), 70000)
    assert 37500 * num * 100 == 787500 * den        # exactly 7875 uL/h, no rounding yet
    p = app.program_from_library(INOTROPES, MILRINONE, None, 37500, "mcg/kg/min", 100000,
                                 weight_g=70000)
    assert p.rate_ul_per_h == 7900                  # nearest 0.1 mL/h
    # the dose 7.9 mL/h gives: 7.9 * 200 / 70 / 60 = 0.376190... shown rounded, marked "~"
    assert (p.delivered, p.delivered_exact) == (37619, False)
    assert p.dose_line == "~0.37619 mcg/kg/min"
    # Dobutamine 2.5 mcg/kg/min, 80 kg, 500 mg/250 mL: 2.5 * 80 * 60 / 2000 = 6 mL/h exactly
    p = app.program_from_library(INOTROPES, DOBUTAMINE, None, 250000, "mcg/kg/min", 100000,
                                 weight_g=80000)
    assert p.rate_ul_per_h == 6000 and p.delivered_exact and p.dose_line == "2.5 mcg/kg/min"
    # Epoprostenol 0.002 mcg/kg/min, 150 kg, 0.015 mg/mL: 0.002 * 150 * 60 / 15 = 1.2 mL/h
    p = app.program_from_library(INOTROPES, EPOPROSTENOL, None, 200, "mcg/kg/min", 100000,
                                 weight_g=150000)
    assert p.rate_ul_per_h == 1200 and p.delivered_exact


def test_mg_per_kg_per_h_from_a_gram_concentration_SR_TH_3():
    app, world, h = make_pump()
    # IVIG 30 mg/kg/h, 70 kg, 10 g/100 mL = 100 mg/mL: 21 mL/h
    p = app.program_from_library(MIXED, IVIG, None, 300000, "mg/kg/h", 100000, weight_g=70000)
    assert p.rate_ul_per_h == 21000 and p.delivered_exact and p.dose_line == "30 mg/kg/h"


def test_parse_scaled_is_exact_and_never_rounds_SR_TH_3():
    assert pg.parse_scaled("0.375", 5) == 37500
    assert pg.parse_scaled("500", 3) == 500000
    assert pg.parse_scaled(".5", 3) == 500
    for bad in ("0.0000001", "1,5", "-2", "1e3", "", "."):
        try:
            pg.parse_scaled(bad, 5)
            assert False, bad
        except ValueError:
            pass


# ---- the rounding rule ---------------------------------------------------------------------

def test_rate_rounds_to_nearest_tenth_ml_per_h_ties_down_SR_TH_2():
    assert [pg.round_rate(n, 1) for n in (49, 50, 51, 149, 150, 151, 250, 251)] == \
        [0, 0, 100, 100, 100, 200, 200, 300]
    assert pg.round_rate(301, 2) == 200                 # 150.5 uL/h
    assert (pg.ceil_rate(101, 1), pg.ceil_rate(100, 1), pg.floor_rate(199, 1)) == (200, 100, 100)


def test_rounding_on_a_real_dose_and_the_dose_actually_given_SR_TH_3():
    app, world, h = make_pump()
    # Vancomycin 4 mg/mL (no hard min): 0.6 mg/h = 150 uL/h exactly: a tie, goes down
    p = app.program_from_library(ADULT, VANCO, 1, 600, "mg/h", 10000)
    assert p.rate_ul_per_h == 100 and p.delivered == 400 and p.delivered_exact
    assert p.dose_line == "0.4 mg/h"
    p = app.program_from_library(ADULT, VANCO, 1, 604, "mg/h", 10000)      # 151 uL/h
    assert p.rate_ul_per_h == 200


def test_dose_rounding_to_no_rate_is_refused_not_clamped_SR_TH_2():
    app, world, h = make_pump()
    e = _refusal(app, ADULT, VANCO, 1, 200, "mg/h", 10000)          # 50 uL/h -> 0
    assert e.reason == pg.RATE_BELOW_PUMP_MIN
    assert e.message == "dose 0.2 mg/h gives 0 mL/h: below the pump's minimum 0.1 mL/h"
    e = _refusal(app, ADULT, MORPHINE, None, 0, "mg/h", 10000)      # basal 0: no infusion
    assert e.reason == pg.RATE_BELOW_PUMP_MIN


def test_hard_limits_become_inward_rate_limits_and_nearest_rate_moves_inside_SR_LIB_4():
    app, world, h = make_pump()
    calls = _spy_core(app)
    # Milrinone at 70.2 kg: hard max 0.75 -> 15.795 mL/h, hard min 0.1 -> 2.106 mL/h
    p = app.program_from_library(INOTROPES, MILRINONE, None, 75000, "mcg/kg/min", 100000,
                                 weight_g=70200, confirm_soft=True)
    assert (p.hard_min_rate_ul_per_h, p.hard_max_rate_ul_per_h) == (2200, 15700)
    assert p.rate_ul_per_h == 15700          # 15.795 -> 15.8 is above: moved inward
    assert p.delivered <= 75000
    # the rate limits and the entry's occlusion threshold go to the core with the program
    assert calls[-1] == (15700, 100000, 0, 207, 100, 2200, 15700)
    p = app.program_from_library(INOTROPES, MILRINONE, None, 10000, "mcg/kg/min", 100000,
                                 weight_g=70200, confirm_soft=True)
    assert p.rate_ul_per_h == 2200           # 2.106 -> 2.1 is below the hard min: inward
    assert p.delivered >= 10000


def test_rate_outside_hard_limits_refused_by_core_when_application_bypassed_SR_CORE_1():
    app, world, h = make_pump()
    for rate, words in ((15800, "above max 15.7 mL/h"), (2100, "below min 2.2 mL/h")):
        try:
            app.program_continuous(rate, 100000, hard_min_rate_ul_per_h=2200,
                                   hard_max_rate_ul_per_h=15700)
            assert False, "the core took %d uL/h outside 2200..15700" % rate
        except sc.ProgramRefused as e:
            assert words in str(e), str(e)
    assert app.program is None
    assert [t for t, a, b in events(app)].count(ev.PROGRAM_REFUSED) == 2


def test_entry_occlusion_and_air_limits_go_with_the_program_SR_LIB_1():
    app, world, h = make_pump()
    calls = _spy_core(app)
    app.program_from_library(ADULT, MORPHINE, None, 2000, "mg/h", 50000)
    assert calls[-1] == (2000, 50000, 0, 310, 50, 0, 10000)     # hard min 0: none
    app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 50000)
    assert calls[-1] == (100000, 50000, 0, 300, 100, 4000, 120000)


# ---- hard and soft limits (SR-LIB-4) ----------------------------------------------------------

def test_dose_above_hard_max_refused_with_value_limit_unit_SR_LIB_4():
    app, world, h = make_pump()
    e = _refusal(app, ADULT, VANCO, 0, 650000, "mg/h", 250000)
    assert e.reason == pg.ABOVE_HARD_MAX and e.reason_name() == "ABOVE_HARD_MAX"
    assert e.message == ("dose 650 mg/h above hard max 600 mg/h for Vancomycin: not allowed"
                         " in Adult home")
    assert e.short == "Above hard max 600 mg/h: not allowed"
    # not overridable: confirming does not help
    e = _refusal(app, ADULT, VANCO, 0, 650000, "mg/h", 250000, confirm_soft=True)
    assert e.reason == pg.ABOVE_HARD_MAX
    assert app.program is None
    assert (ev.LIBRARY_CHECK_REFUSED, pg.ABOVE_HARD_MAX, VANCO) in events(app)


def test_dose_below_hard_min_refused_SR_LIB_4():
    app, world, h = make_pump()
    e = _refusal(app, ADULT, VANCO, 0, 10000, "mg/h", 250000)
    assert e.reason == pg.BELOW_HARD_MIN
    assert e.message == ("dose 10 mg/h below hard min 20 mg/h for Vancomycin: not allowed"
                         " in Adult home")


def test_soft_limit_needs_confirmation_then_logged_and_low_alarm_SR_LIB_4_SR_AL_1():
    app, world, h = make_pump()
    e = _refusal(app, ADULT, VANCO, 0, 510000, "mg/h", 250000)
    assert e.reason == pg.SOFT_LIMIT_NEEDS_CONFIRMATION
    assert e.message == ("dose 510 mg/h above soft max 500 mg/h for Vancomycin: confirm to"
                         " override")
    assert app.program is None and not app.alarms.active
    p = app.program_from_library(ADULT, VANCO, 0, 510000, "mg/h", 250000, confirm_soft=True)
    assert p.soft == pg.SOFT_ABOVE_MAX and p.rate_ul_per_h == 102000
    log = events(app)
    assert (ev.SOFT_LIMIT_OVERRIDE, VANCO | (2 << 16) | (pg.SOFT_ABOVE_MAX << 24),
            510000) in log
    assert app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE)
    assert al.priority(al.SOFT_LIMIT_OVERRIDE) == al.PRIORITY_LOW
    assert al.name(al.SOFT_LIMIT_OVERRIDE) == "SOFT LIMIT OVERRIDE"
    app.start()                                # informational: does not block delivery
    run_for(app, world, 20)
    assert app.core.phase == sc.PHASE_RUNNING
    assert app.alarms.top() == al.SOFT_LIMIT_OVERRIDE
    assert any("SOFT LIMIT" in line for line in h.display.lines), h.display.lines


def test_soft_limit_crossed_only_by_the_rounded_rate_still_asks_SR_LIB_4():
    app, world, h = make_pump()
    # Milrinone 0.5 mcg/kg/min (= soft max) at 70.34 kg: 10.551 mL/h -> 10.6 mL/h gives more
    e = _refusal(app, INOTROPES, MILRINONE, None, 50000, "mcg/kg/min", 100000,
                 weight_g=70340)
    assert e.reason == pg.SOFT_LIMIT_NEEDS_CONFIRMATION
    assert e.message == ("dose 0.5 mcg/kg/min gives ~0.50232 mcg/kg/min at 10.6 mL/h, above"
                         " soft max 0.5 mcg/kg/min for Milrinone: confirm to override")


def test_soft_min_override_logged_with_its_side_SR_LIB_4():
    app, world, h = make_pump()
    app.program_from_library(ADULT, VANCO, 0, 30000, "mg/h", 250000, confirm_soft=True)
    assert (ev.SOFT_LIMIT_OVERRIDE, VANCO | (2 << 16) | (pg.SOFT_BELOW_MIN << 24),
            30000) in events(app)


def test_soft_override_alarm_clears_when_program_replaced_or_completed_SR_AL_3():
    app, world, h = make_pump()
    app.program_from_library(ADULT, VANCO, 0, 510000, "mg/h", 250000, confirm_soft=True)
    app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 250000)
    assert not app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE)
    # 1 mL at 102 mL/h completes in ~35 s
    app.program_from_library(ADULT, VANCO, 0, 510000, "mg/h", 1000, confirm_soft=True)
    assert app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE)
    app.start()
    run_for(app, world, 60)
    assert app.core.phase == sc.PHASE_COMPLETE
    assert not app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE)
    # a bare program (tests, scenarios) replaces it too
    app.program_from_library(ADULT, VANCO, 0, 510000, "mg/h", 1000, confirm_soft=True)
    app.program_continuous(10000, 1000)
    assert not app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE) and app.therapy is None


def test_soft_override_does_not_hide_paused_too_long_SR_AL_1():
    app, world, h = make_pump()
    app.program_from_library(ADULT, VANCO, 0, 510000, "mg/h", 250000, confirm_soft=True)
    app.start()
    run_for(app, world, 5)
    app.pause()
    run_for(app, world, 130)
    assert app.alarms.is_active(al.PAUSED_TOO_LONG)


# ---- refusal reasons, in words ---------------------------------------------------------------

def test_each_refusal_reason_says_why_SR_TH_4():
    app, world, h = make_pump()
    cases = (
        (("ICU", VANCO, 0, 500000, "mg/h", 1000), {}, pg.CARE_AREA_UNKNOWN,
         "care area 'ICU' is not in library 42 v3"),
        ((7, VANCO, 0, 500000, "mg/h", 1000), {}, pg.CARE_AREA_UNKNOWN,
         "care area 7 is not in library 42 v3"),
        ((ADULT, 999, 0, 500000, "mg/h", 1000), {}, pg.DRUG_NOT_IN_LIBRARY,
         "drug 999 is not in drug library 42 v3"),
        ((ADULT, MILRINONE, None, 37500, "mcg/kg/min", 1000), {"weight_g": 70000},
         pg.DRUG_NOT_IN_CARE_AREA,
         "Milrinone is not in the library for care area Adult home (listed in: Inotropes)"),
        ((ADULT, VANCO, None, 500000, "mg/h", 1000), {}, pg.CONC_REQUIRED,
         "Vancomycin has 2 concentrations in Adult home: choose one (5 mg/mL, "
         "1000 mg/250 mL)"),
        ((ADULT, VANCO, (2, 7000, 1000), 500000, "mg/h", 1000), {}, pg.CONC_NOT_IN_LIBRARY,
         "Vancomycin 7 mg/1 mL is not a concentration in the library for Adult home "
         "(it has 5 mg/mL, 1000 mg/250 mL)"),
        ((ADULT, VANCO, 5, 500000, "mg/h", 1000), {}, pg.CONC_NOT_IN_LIBRARY,
         "Vancomycin has no concentration number 6 in Adult home (it has 2: 5 mg/mL, "
         "1000 mg/250 mL)"),
        ((ADULT, VANCO, 0, 500000, "mcg/h", 1000), {}, pg.DOSE_UNIT_MISMATCH,
         "dose unit mcg/h does not match: Vancomycin 5 mg/mL is dosed in mg/h in Adult home"),
        ((ADULT, VANCO, 0, 500000, "mg/hr", 1000), {}, pg.DOSE_UNIT_MISMATCH,
         "dose unit mg/hr does not match: Vancomycin 5 mg/mL is dosed in mg/h in Adult home"),
        ((INOTROPES, MILRINONE, None, 37500, "mcg/kg/min", 1000), {}, pg.WEIGHT_REQUIRED,
         "Milrinone is dosed in mcg/kg/min: enter the patient's weight"),
        ((INOTROPES, MILRINONE, None, 37500, "mcg/kg/min", 1000), {"weight_g": 250000},
         pg.WEIGHT_OUT_OF_RANGE, "weight 250 kg above max 200 kg for Milrinone in Inotropes"),
        ((INOTROPES, MILRINONE, None, 37500, "mcg/kg/min", 1000), {"weight_g": 29500},
         pg.WEIGHT_OUT_OF_RANGE, "weight 29.5 kg below min 30 kg for Milrinone in Inotropes"),
        ((INOTROPES, 0, None, 100000, "mL/h", 1000), {}, pg.BASIC_NOT_ALLOWED,
         "basic infusion (no drug) is not allowed in care area Inotropes"),
        ((ADULT, VANCO, 0, 500000, "mg/h", 600000), {}, pg.VTBI_OUT_OF_RANGE,
         "VTBI 600 mL above max 500 mL for Vancomycin in Adult home"),
        ((ADULT, NACL, None, 125000, "mL/h", 10000), {}, pg.VTBI_OUT_OF_RANGE,
         "VTBI 10 mL below min 50 mL for Sodium chloride 0.9% in Adult home"),
        ((ADULT, VANCO, 0, 500000, "mg/h", 1000), {"library_id": 41}, pg.LIBRARY_CHANGED,
         "the drug library changed (now 42 v3): program again"),
        ((ADULT, VANCO, 0, 500000, "mg/h", 1000), {"library_id": 42, "library_version": 2},
         pg.LIBRARY_CHANGED, "the drug library changed (now 42 v3): program again"),
        ((ADULT, VANCO, 0, -1, "mg/h", 1000), {}, pg.DOSE_INVALID,
         "dose -1 is not a whole number of mg/h x 10^-3"),
    )
    for args, kw, reason, message in cases:
        e = _refusal(app, *args, **kw)
        assert (e.reason, e.message) == (reason, message), (args, e.reason, e.message)
        assert (ev.LIBRARY_CHECK_REFUSED, reason, args[1]) in events(app)
    assert app.program is None


def test_equivalent_concentration_is_the_same_entry_SR_TH_4():
    app, world, h = make_pump()
    for key in ((2, 500000, 100000), (1, 500, 100000), (3, 5000000, 1000)):  # = 5 mg/mL
        p = app.program_from_library(ADULT, VANCO, key, 500000, "mg/h", 1000)
        assert p.entry.conc_amount == 5000 and p.rate_ul_per_h == 100000


def test_program_while_delivering_refused_by_the_pump_SR_CORE_1():
    app, world, h = make_pump()
    app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 250000)
    app.start()
    e = _refusal(app, ADULT, VANCO, 0, 400000, "mg/h", 250000)
    assert e.reason == pg.PUMP_REFUSED and "pause first" in e.message
    assert app.therapy.dose == 500000


def test_no_library_refuses_every_program_basic_included_SR_TH_4():
    app, world, h = make_pump(with_library=False)
    for drug in (0, VANCO):
        e = _refusal(app, ADULT, drug, None, 100000, "mL/h", 1000)
        assert e.reason == pg.NO_LIBRARY
        assert e.message == ("no drug library loaded: a technician must load one before a "
                             "therapy can be programmed")
    st = app.status()
    assert (st["library_id"], st["library_version"], st["drug_id"]) == (0, 0, 0)
    assert ui.render(app)[0] == "IDLE No library"


# ---- basic infusion (SR-TH-4) -------------------------------------------------------------------

def test_basic_infusion_only_where_allowed_and_within_its_limits_SR_TH_4():
    app, world, h = make_pump()
    p = app.program_from_library(ADULT, 0, None, 100000, "mL/h", 100000)
    assert p.rate_ul_per_h == 100000 and p.drug_name == "Basic infusion"
    assert app.status()["drug_id"] == 0
    assert _refusal(app, ADULT, 0, None, 501000, "mL/h", 1000).reason == pg.ABOVE_HARD_MAX
    assert _refusal(app, ADULT, 0, None, 300000, "mL/h", 1000).reason == \
        pg.SOFT_LIMIT_NEEDS_CONFIRMATION
    assert _refusal(app, ADULT, 0, None, 100000, "mg/h", 1000).reason == pg.DOSE_UNIT_MISMATCH
    assert _refusal(app, ADULT, 0, None, 100000, "mL/h", 3001000).reason == pg.VTBI_OUT_OF_RANGE
    assert _refusal(app, INOTROPES, 0, None, 100000, "mL/h", 1000).reason == \
        pg.BASIC_NOT_ALLOWED


# ---- therapy context, status, display (SR-LIB-4, SR-LOG-1) -------------------------------------

def test_therapy_context_logged_immediately_before_therapy_programmed_SR_LIB_4():
    app, world, h = make_pump()
    app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 250000)
    log = events(app)
    i = [t for t, a, b in log].index(ev.THERAPY_PROGRAMMED)
    assert log[i - 1] == (ev.THERAPY_CONTEXT, 42, (3 << 16) | VANCO)
    assert log[i] == (ev.THERAPY_PROGRAMMED, 100000, 250000)
    assert ev.name(ev.THERAPY_CONTEXT) == "THERAPY_CONTEXT"
    # a bare program (tests, scenarios) has no context: THERAPY_PROGRAMMED stands alone
    app.program_continuous(10000, 1000)
    assert events(app)[-2][0] != ev.THERAPY_CONTEXT


def test_status_and_display_show_library_drug_and_dose_in_its_unit_SR_LIB_4_SR_TH_3():
    app, world, h = make_pump()
    app.program_from_library(INOTROPES, MILRINONE, None, 37500, "mcg/kg/min", 100000,
                             weight_g=70000)
    st = app.status()
    assert (st["library_id"], st["library_version"], st["drug_id"]) == (42, 3, MILRINONE)
    assert st["rate_ul_per_h"] == 7900
    app.start()
    run_for(app, world, 10)
    lines = h.display.lines
    assert lines[0] == "RUNNING Lib 42 v3", lines
    assert "Milrinone" in lines and "~0.37619 mcg/kg/min" in lines, lines
    assert "Rate 7.9 mL/h" in lines, lines
    assert len(lines) <= 8 and max(len(x) for x in lines) <= 21


def test_library_swapped_keeps_the_running_program_and_shows_the_new_one_SR_LIB_4():
    app, world, h = make_pump()
    app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 250000)
    app.set_library(None)
    st = app.status()
    assert (st["library_id"], st["drug_id"]) == (0, VANCO)
    app.set_library(open_library())
    assert app.status()["library_id"] == 42
