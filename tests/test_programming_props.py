"""Programming from compiled libraries (CPython only: needs the host compiler).

* Property (hypothesis): for generated library entries of every dose unit, concentration
  and weight, and generated doses, ``firmware.programming`` either refuses for the reason an
  independent ``fractions.Fraction`` oracle predicts, or programs the rate the stated
  rounding rule gives; the dose that rate delivers never crosses a hard limit, and the safety
  core accepts the program with the hard rate limits (SR-TH-3, SR-LIB-4, SR-CORE-1).
* The shipped sample library (libraries/sample_home_infusion.csv), compiled: every entry's
  offered dose programs at both ends of its weight range, and a nurse programs a therapy on
  the buttons from it (SR-TH-4).
"""
import hashlib
import io
import json
import os
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import hal
import safety_core as sc
from firmware import alarms as al
from firmware import druglib as dl
from firmware import menu as mn
from firmware import programming as pg
from host_tools.library import check as ck
from host_tools.library import compiler as cp
from host_tools.library import source as sm
from tests.mpy.library_pump import make_pump, press

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "libraries", "sample_home_infusion.csv")
KEY = hashlib.sha256(b"test_programming_props").digest()
MODEL = "AMB-PUMP-1"

UNITS = [u[0] for u in dl.DOSE_UNITS if u]
CONC_FOR = {"mg": ["g", "mg", "mcg"], "mcg": ["g", "mg", "mcg"], "units": ["units"],
            "mmol": ["mmol"]}
AMOUNT_BASE = {"mL": 1, "mg": 1000, "mcg": 1, "units": 1, "mmol": 1}
CONC_BASE = {"g": 1000000, "mg": 1000, "mcg": 1, "units": 1, "mmol": 1}


def compile_library(doc):
    """Open a library compiled from a JSON document, or None when check refuses it."""
    src = sm.loads(json.dumps(doc), "json")
    model, problems = ck.check_source(src)
    if model is None or ck.errors(problems):
        return None
    return dl.open_verified(io.BytesIO(cp.compile_model(model, KEY, created_s=0)), KEY, MODEL)


def compile_sample():
    model, problems = ck.check_file(SAMPLE, {"library_id": 9, "version": 4})
    assert not ck.errors(problems)
    data = cp.compile_model(model, KEY, created_s=0)
    return dl.open_verified(io.BytesIO(data), KEY, MODEL)


def exact_rate_ul_per_h(entry_doc, dose, weight_kg):
    """The oracle: uL/h of a dose (a Fraction in the dose unit), from the source's decimals."""
    text, decimals, amount, per_kg, seconds = dl.DOSE_UNITS[dl.dose_unit_code(
        entry_doc["dose_unit"])]
    per_h = dose * Fraction(3600, seconds)
    if per_kg:
        per_h *= weight_kg
    if amount == "mL":
        return per_h * 1000
    per_ml = (Fraction(Decimal(entry_doc["conc_amount"])) * CONC_BASE[entry_doc["conc_unit"]]
              / Fraction(Decimal(entry_doc["conc_volume_ml"])))
    return per_h * AMOUNT_BASE[amount] / per_ml * 1000


def nearest_grid_ties_down(x):
    q = x // 100
    return int(q * 100 + (100 if x - q * 100 > 50 else 0))


def decimals_text(n, places):
    return str(Decimal(n).scaleb(-places))


@st.composite
def entries(draw):
    unit = draw(st.sampled_from(UNITS))
    text, places, amount, per_kg, seconds = dl.DOSE_UNITS[dl.dose_unit_code(unit)]
    top = 500000 if unit == "mL/h" else 10 ** (places + 4)
    hard_max = draw(st.integers(100 if unit == "mL/h" else 1, top))
    hard_min = draw(st.one_of(st.none(), st.integers(0, hard_max)))
    if unit == "mL/h" and hard_min is not None and hard_min:
        hard_min = max(hard_min, 100)
        assume(hard_min <= hard_max)
    e = {"drug_id": 10, "drug_name": "Drug", "dose_unit": unit,
         "hard_max": decimals_text(hard_max, places)}
    if hard_min is not None:
        e["hard_min"] = decimals_text(hard_min, places)
    if amount != "mL":
        e["conc_unit"] = draw(st.sampled_from(CONC_FOR[amount]))
        e["conc_amount"] = decimals_text(draw(st.integers(1, 10 ** 7)), 3)
        e["conc_volume_ml"] = decimals_text(draw(st.sampled_from([1000, 50000, 250000,
                                                                  1000000, 1500])), 3)
    weight_kg = None
    if per_kg:
        w_min = draw(st.integers(100, 200000))
        w_max = draw(st.integers(w_min, 500000))
        e["weight_min_kg"] = decimals_text(w_min, 3)
        e["weight_max_kg"] = decimals_text(w_max, 3)
        weight_kg = Fraction(draw(st.integers(w_min, w_max)), 1000)
    dose = draw(st.integers(0, hard_max * 2 + 2))
    return e, hard_min, hard_max, dose, weight_kg, places


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(entries())
def test_conversion_and_limits_match_an_exact_oracle_SR_TH_3_SR_LIB_4(case):
    e, hard_min, hard_max, dose, weight_kg, places = case
    doc = {"schema_version": 1,
           "library": {"library_id": 5, "version": 1, "name": "gen", "model": MODEL},
           "care_areas": [{"name": "Area", "basic_infusion": {"allowed": False},
                           "entries": [e]}]}
    lib = compile_library(doc)
    assume(lib is not None)
    weight_g = int(weight_kg * 1000) if weight_kg is not None else None
    scale = Fraction(1, 10 ** places)
    exact = exact_rate_ul_per_h(e, dose * scale, weight_kg)
    hmin_rate = 0
    if hard_min:
        hmin_rate = -((-exact_rate_ul_per_h(e, hard_min * scale, weight_kg)) // 100) * 100
    hmax_rate = exact_rate_ul_per_h(e, hard_max * scale, weight_kg) // 100 * 100
    try:
        p = pg.plan(lib, "Area", 10, None, dose, e["dose_unit"], 100000, weight_g)
    except pg.ProgramError as err:
        event("refused: %s" % err.reason_name())
        if hard_min is not None and dose < hard_min:
            assert err.reason == pg.BELOW_HARD_MIN
        elif dose > hard_max:
            assert err.reason == pg.ABOVE_HARD_MAX
        elif hmax_rate < 100 or hmin_rate > 500000 or hmin_rate > hmax_rate:
            assert err.reason == pg.HARD_RANGE_UNREACHABLE
        elif nearest_grid_ties_down(exact) < 100:
            assert err.reason == pg.RATE_BELOW_PUMP_MIN
        else:
            assert nearest_grid_ties_down(exact) > 500000
            assert err.reason == pg.RATE_ABOVE_PUMP_MAX, err.message
        assert str(dl.format_scaled(dose, places)) in err.message or err.reason == \
            pg.HARD_RANGE_UNREACHABLE
        return
    # accepted: the rounding rule, moved inward only when the nearest rate crosses a limit
    event("programmed %s%s" % (e["dose_unit"], "" if p.rate_ul_per_h == nearest_grid_ties_down(
        exact) else ", moved inward"))
    nearest = nearest_grid_ties_down(exact)
    assert p.rate_ul_per_h == min(max(nearest, hmin_rate), hmax_rate)
    assert abs(p.rate_ul_per_h - exact) <= 100
    assert 100 <= p.rate_ul_per_h <= 500000 and p.rate_ul_per_h % 100 == 0
    # exactly the oracle's rate, before rounding
    assert Fraction(p.num, p.den) * dose == exact
    # the dose the rate delivers never crosses a hard limit
    given_dose = Fraction(p.rate_ul_per_h * p.den, p.num)
    assert given_dose <= hard_max
    if hard_min is not None:
        assert given_dose >= hard_min
    assert (p.hard_min_rate_ul_per_h, p.hard_max_rate_ul_per_h) == (hmin_rate,
                                                                    min(hmax_rate, 500000))
    # the safety core takes it with its rate limits, and refuses one grid step outside them
    core = sc.SafetyCore()
    core.load_program(p.rate_ul_per_h, 100000, 0, 300, 100, p.hard_min_rate_ul_per_h,
                      p.hard_max_rate_ul_per_h)
    if p.hard_max_rate_ul_per_h < 500000:
        try:
            core.load_program(p.hard_max_rate_ul_per_h + 100, 100000, 0, 300, 100,
                              p.hard_min_rate_ul_per_h, p.hard_max_rate_ul_per_h)
            assert False, "core took a rate above the hard max rate"
        except sc.ProgramRefused:
            pass


def test_sample_library_offered_doses_program_at_both_weight_ends_SR_TH_4():
    lib = compile_sample()
    programmed = 0
    for ca in range(lib.care_area_count):
        area = lib.care_area(ca)
        for i in range(area.first_entry, area.first_entry + area.entry_count):
            e = lib.entry(i)
            first, count = lib.drug_range(ca, e.drug_id)
            conc = None if e.drug_id == 0 else i - first
            dose = next((v for v in (e.default, e.soft_min, e.hard_min) if v), e.hard_max)
            weights = [None]
            if dl.DOSE_UNITS[e.dose_unit][3]:
                weights = [e.weight_min_g, e.weight_max_g]
            for w in weights:
                vtbi = e.vtbi_max_ul or 100000
                try:
                    p = pg.plan(lib, ca, e.drug_id, conc, dose, e.dose_unit, vtbi, w)
                except pg.ProgramError as err:
                    # a tiny per-kg dose at the lightest weight may need < 0.1 mL/h
                    assert err.reason == pg.RATE_BELOW_PUMP_MIN, (area.name, e.drug_id,
                                                                  err.message)
                    continue
                assert p.hard_min_rate_ul_per_h <= p.rate_ul_per_h <= p.hard_max_rate_ul_per_h
                programmed += 1
    assert programmed >= 25


def test_programming_on_the_buttons_from_the_compiled_sample_library_SR_TH_4():
    app, world, h = make_pump(with_library=False)
    app.set_library(compile_sample())
    press(app, world, hal.KEY_SELECT)
    lines = press(app, world, hal.KEY_UP, 5)
    assert lines[2] == ">Hydration", lines
    assert press(app, world, hal.KEY_SELECT)[2] == ">Basic infusion"
    assert press(app, world, hal.KEY_UP)[2] == ">Sodium chloride 0.9%"
    assert press(app, world, hal.KEY_UP)[2] == ">Potassium chloride"
    lines = press(app, world, hal.KEY_SELECT)
    assert lines[2] == ">20 mmol/1000 mL", lines
    lines = press(app, world, hal.KEY_SELECT)
    assert lines[2:4] == [">2.5 mmol/h", "  = 125 mL/h"], lines
    assert press(app, world, hal.KEY_SELECT)[2] == ">1000 mL"
    lines = press(app, world, hal.KEY_SELECT)
    assert lines == ["Potassium chloride", "20 mmol/1000 mL", "Rate 125 mL/h", "2.5 mmol/h",
                     "VTBI 1000 mL", "SELECT=program"], lines
    press(app, world, hal.KEY_SELECT)
    press(app, world, hal.KEY_RUN_STOP)
    assert app.core.phase == sc.PHASE_RUNNING
    st_ = app.status()
    assert (st_["library_id"], st_["library_version"], st_["drug_id"]) == (9, 4, 602)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([hal.KEY_UP, hal.KEY_DOWN, hal.KEY_SELECT, hal.KEY_SELECT,
                                 hal.KEY_SELECT, hal.KEY_RUN_STOP, hal.KEY_SILENCE]),
                min_size=1, max_size=80))
def test_any_key_sequence_keeps_screens_in_bounds_and_programs_only_checked_doses_SR_TH_4(keys):
    """A monkey on the buttons: never a menu fault, every screen fits 8 x 21, and whatever
    gets programmed is a library program whose rate lies inside its hard rate limits."""
    app, world, h = make_pump()
    for k in keys:
        lines = press(app, world, k)
        assert len(lines) <= 8 and all(len(x) <= 21 for x in lines), lines
        assert not app.errors_logged & mn.ERR_MENU, app.last_error
        if app.program is not None:
            p = app.therapy
            assert p is not None and app.program[0] == p.rate_ul_per_h
            assert p.hard_min_rate_ul_per_h <= p.rate_ul_per_h <= p.hard_max_rate_ul_per_h
            assert p.soft == pg.SOFT_NONE or app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE) or \
                app.core.phase in (sc.PHASE_COMPLETE, sc.PHASE_KVO)
