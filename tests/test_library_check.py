"""`pumpctl library check` rules (SR-LIB-1, SR-TH-3, SR-TH-4): one test per rule, each
message naming the row (header = row 1), the field, the value and the limit, and every
error of a file listed at once.
"""
import csv
import io

import pytest

from host_tools.library import check as ck
from host_tools.library import source as sm

BASIC = {"care_area": "Ward", "drug_id": "basic", "basic_allowed": "yes", "dose_unit": "mL/h",
         "hard_max": "500"}
GOOD = {"care_area": "Ward", "drug_id": "10", "drug_name": "Drug A", "dose_unit": "mL/h",
        "hard_max": "100"}
MG = {"conc_amount": "5", "conc_unit": "mg", "conc_volume_ml": "1", "dose_unit": "mg/h"}
PER_KG = dict(MG, dose_unit="mcg/kg/min", weight_min_kg="3", weight_max_kg="150",
              hard_max="10")
PCA = {"pca_max_bolus": "2", "pca_min_lockout_minutes": "6", "pca_max_boluses_per_h": "6",
       "pca_max_dose_1h": "10", "pca_max_dose_4h": "30"}


def row(**kw):
    return dict(GOOD, **kw)


def csv_text(*rows, first=BASIC):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(sm.CSV_COLUMNS)
    for r in ((first,) if first else ()) + rows:
        w.writerow([r.get(c, "") for c in sm.CSV_COLUMNS])
    return out.getvalue()


def run(*rows, first=BASIC):
    _, problems = ck.check_source(sm.loads(csv_text(*rows, first=first), "csv"))
    return ([str(p) for p in ck.errors(problems)], [str(p) for p in ck.warnings(problems)])


RULES = [
    # soft inside hard, default inside soft
    ("soft_max_above_hard_max", [row(soft_max="120")],
     "row 3, soft_max: 120 mL/h above hard_max 100 mL/h"),
    ("soft_min_below_hard_min", [row(hard_min="2", soft_min="1")],
     "row 3, soft_min: 1 mL/h below hard_min 2 mL/h"),
    ("soft_min_above_soft_max", [row(soft_min="50", soft_max="40")],
     "row 3, soft_min: 50 mL/h above soft_max 40 mL/h"),
    ("soft_min_above_hard_max", [row(soft_min="150")],
     "row 3, soft_min: 150 mL/h above hard_max 100 mL/h"),
    ("soft_max_below_hard_min", [row(hard_min="20", soft_max="10")],
     "row 3, soft_max: 10 mL/h below hard_min 20 mL/h"),
    ("hard_min_above_hard_max", [row(hard_min="200")],
     "row 3, hard_min: 200 mL/h above hard_max 100 mL/h"),
    ("default_above_soft_max", [row(default="90", soft_max="80")],
     "row 3, default: 90 mL/h above soft_max 80 mL/h"),
    ("default_below_soft_min", [row(default="5", soft_min="10")],
     "row 3, default: 5 mL/h below soft_min 10 mL/h"),
    ("default_above_hard_max_without_soft", [row(default="101")],
     "row 3, default: 101 mL/h above hard_max 100 mL/h"),
    ("hard_max_zero", [row(hard_max="0")],
     "row 3, hard_max: 0 mL/h: the hard maximum must be above 0"),
    # the pump's absolute limits (SR-TH-2)
    ("rate_above_device_max", [row(hard_max="600")],
     "row 3, hard_max: 600 mL/h above the pump's maximum rate 500 mL/h"),
    ("rate_below_device_min", [row(soft_min="0.05")],
     "row 3, soft_min: 0.05 mL/h below the pump's minimum rate 0.1 mL/h"),
    ("basic_rate_above_device_max", [row()], None),   # placeholder replaced below
    ("default_not_on_rate_step", [row(default="12.35")],
     "row 3, default: 12.35 mL/h is not a multiple of the pump's 0.1 mL/h rate step"),
    ("vtbi_above_device_max", [row(vtbi_max_ml="10000")],
     "row 3, vtbi_max_ml: 10000 mL above the pump's maximum VTBI 9999 mL"),
    ("vtbi_below_device_min", [row(vtbi_min_ml="0.05")],
     "row 3, vtbi_min_ml: 0.05 mL below the pump's minimum VTBI 0.1 mL"),
    ("vtbi_min_above_max", [row(vtbi_min_ml="200", vtbi_max_ml="100")],
     "row 3, vtbi_min_ml: 200 mL above vtbi_max_ml 100 mL"),
    ("occlusion_above_20_psi", [row(occlusion_mmhg="1500")],
     "row 3, occlusion_mmhg: 1500 mmHg above the maximum 1034 mmHg (2 to 20 psi)"),
    ("occlusion_below_2_psi", [row(occlusion_mmhg="50")],
     "row 3, occlusion_mmhg: 50 mmHg below the minimum 104 mmHg (2 to 20 psi)"),
    ("air_limit_out_of_range", [row(air_limit_ul="600")],
     "row 3, air_limit_ul: 600 uL above the maximum 500 uL"),
    # units and concentrations (SR-TH-3)
    ("unknown_unit", [row(dose_unit="mg/min")],
     "row 3, dose_unit: 'mg/min' is not a dose unit (mL/h, mg/h, mcg/h, mcg/kg/min, mg/kg/h, "
     "units/h, mmol/h)"),
    ("unit_in_wrong_case", [row(dose_unit="ml/h")],
     "row 3, dose_unit: 'ml/h' is not a dose unit (mL/h, mg/h, mcg/h, mcg/kg/min, mg/kg/h, "
     "units/h, mmol/h); did you mean 'mL/h'?"),
    ("ug_instead_of_mcg", [row(dose_unit="ug/h")],
     "row 3, dose_unit: 'ug/h' is not a dose unit (mL/h, mg/h, mcg/h, mcg/kg/min, mg/kg/h, "
     "units/h, mmol/h); did you mean 'mcg/h'?"),
    ("unknown_concentration_unit", [row(conc_amount="5", conc_unit="mEq", conc_volume_ml="1")],
     "row 3, conc_unit: 'mEq' is not a concentration unit (g, mg, mcg, units, mmol)"),
    ("missing_concentration", [row(dose_unit="mg/h")],
     "row 3, conc_amount: missing: a dose in mg/h needs a concentration (conc_amount, "
     "conc_unit, conc_volume_ml)"),
    ("partial_concentration", [row(conc_amount="5")],
     "row 3, conc_unit: missing: a concentration needs conc_amount, conc_unit and "
     "conc_volume_ml"),
    ("zero_concentration", [row(**dict(MG, conc_amount="0"))],
     "row 3, conc_amount: 0 mg: a concentration must be above 0"),
    ("concentration_unit_cannot_give_dose", [row(**dict(MG, conc_unit="units"))],
     "row 3, conc_unit: 'units' cannot give a dose in mg/h (use g, mg, mcg)"),
    ("mmol_dose_needs_mmol", [row(**dict(MG, dose_unit="mmol/h"))],
     "row 3, conc_unit: 'mg' cannot give a dose in mmol/h (use mmol)"),
    # weight only where dosing is per kg
    ("weight_on_non_per_kg_unit", [row(weight_min_kg="3", weight_max_kg="150")],
     "row 3, weight_min_kg: weight limits on a non-per-kg unit (mL/h)"),
    ("per_kg_without_weight", [row(**dict(PER_KG, weight_min_kg="", weight_max_kg=""))],
     "row 3, weight_min_kg: missing: dosing in mcg/kg/min needs the patient weight range"),
    ("weight_min_above_max", [row(**dict(PER_KG, weight_min_kg="200"))],
     "row 3, weight_min_kg: 200 kg above weight_max_kg 150 kg"),
    ("weight_above_device", [row(**dict(PER_KG, weight_max_kg="600"))],
     "row 3, weight_max_kg: 600 kg above the pump's 500 kg"),
    # exact decimals that fit the binary
    ("too_many_decimals", [row(**dict(MG, hard_max="1.0001"))],
     "row 3, hard_max: 1.0001 mg/h has more decimal places than the 3 the library keeps for "
     "mg/h"),
    ("five_decimals_allowed_for_mcg_per_kg_min", [row(**dict(PER_KG, default="0.00125"))], None),
    ("too_large_for_the_binary", [row(**dict(MG, dose_unit="units/h", conc_unit="units",
                                             hard_max="5000000"))],
     "row 3, hard_max: 5000000 units/h above the largest value the library stores "
     "(4294967.295 units/h)"),
    ("not_a_number", [row(hard_max="1,5")],
     "row 3, hard_max: '1,5' is not a decimal number >= 0 (digits with an optional '.' as the "
     "decimal point)"),
    ("negative_number", [row(hard_max="-5")],
     "row 3, hard_max: '-5' is not a decimal number >= 0 (digits with an optional '.' as the "
     "decimal point)"),
    ("drug_id_not_a_number", [row(drug_id="abc")], "row 3, drug_id: 'abc' is not a whole number"),
    ("drug_id_out_of_range", [row(drug_id="70000")],
     "row 3, drug_id: 70000 above the maximum 65535"),
    ("missing_required_field", [row(hard_max="")], "row 3, hard_max: missing (required)"),
    ("name_too_long", [row(drug_name="Piperacillin-tazobactam")],
     "row 3, drug_name: 'Piperacillin-tazobactam': must be 1 to 20 printable ASCII characters, "
     "no leading or trailing space (the pump shows 21 characters per line)"),
    # PCA limits
    ("pca_incomplete", [row(**dict(MG, hard_max="10", pca_max_bolus="2"))],
     "row 3, pca_max_dose_4h: missing: PCA needs all of pca_max_bolus, pca_min_lockout_minutes, "
     "pca_max_boluses_per_h, pca_max_dose_1h, pca_max_dose_4h"),
    ("pca_one_hour_below_one_bolus", [row(**dict(MG, hard_max="10", **dict(
        PCA, pca_max_dose_1h="1")))],
     "row 3, pca_max_dose_1h: 1 mg below pca_max_bolus 2 mg: not even one bolus fits"),
    ("pca_four_hours_below_one_hour", [row(**dict(MG, hard_max="10", **dict(
        PCA, pca_max_dose_4h="5")))],
     "row 3, pca_max_dose_4h: 5 mg below pca_max_dose_1h 10 mg"),
    ("pca_on_per_kg_unit", [row(**dict(PER_KG, **PCA))],
     "row 3, pca_max_bolus: PCA limits on a per-kg unit (mcg/kg/min) are not supported"),
    ("pca_lockout_out_of_range", [row(**dict(MG, hard_max="10", **dict(
        PCA, pca_min_lockout_minutes="0")))],
     "row 3, pca_min_lockout_minutes: 0 min below the minimum 1 min"),
    # identity and duplicates
    ("duplicate_drug_and_concentration", [row(**MG), row(**dict(MG, soft_max="3"))],
     "row 4, drug_id: Drug A 5 mg/mL duplicates row 3 (Drug A 5 mg/mL) in care area 'Ward'"),
    ("equivalent_concentration_is_a_duplicate",
     [row(**MG), row(**dict(MG, conc_amount="0.5", conc_unit="g", conc_volume_ml="100"))],
     "row 4, drug_id: Drug A 0.5 g/100 mL duplicates row 3 (Drug A 5 mg/mL) in care area "
     "'Ward'"),
    ("duplicate_in_another_care_area_is_fine", [row(**MG), row(care_area="Ward 2", **MG),
                                               dict(BASIC, care_area="Ward 2")], None),
    ("drug_id_with_two_names", [row(), row(drug_name="Drug B", **MG)],
     "row 4, drug_name: 'Drug B', but drug_id 10 is 'Drug A' on row 3"),
    ("drug_name_with_two_ids", [row(), row(drug_id="11", **MG)],
     "row 4, drug_id: 11, but 'Drug A' is drug_id 10 on row 3"),
    # care areas and the basic infusion (SR-TH-4)
    ("missing_basic_row", [row(care_area="Ward 2")],
     "care area 'Ward 2': no 'basic' row: add one with basic_allowed yes (and its rate limits) "
     "or no"),
    ("second_basic_row", [dict(BASIC)],
     "row 3, drug_id: second basic row for care area 'Ward' (first on row 2)"),
    ("basic_allowed_without_rate_limits", [dict(BASIC, care_area="W2", hard_max="")],
     "row 3, hard_max: missing: an allowed basic infusion needs its rate limits"),
    ("basic_forbidden_with_limits", [dict(BASIC, care_area="W2", basic_allowed="no")],
     "row 3, hard_max: limit given for a forbidden basic infusion (basic_allowed no)"),
    ("basic_rate_above_device", [dict(BASIC, care_area="W2", hard_max="501")],
     "row 3, hard_max: 501 mL/h above the pump's maximum rate 500 mL/h"),
    ("basic_row_with_a_drug_field", [dict(BASIC, care_area="W2", conc_amount="5")],
     "row 3, conc_amount: not a field of a basic-infusion row (no drug, concentration, weight "
     "or PCA fields)"),
    ("basic_row_not_in_ml_per_h", [dict(BASIC, care_area="W2", dose_unit="mg/h")],
     "row 3, dose_unit: 'mg/h': must be 'mL/h'"),
    ("basic_allowed_not_yes_or_no", [dict(BASIC, care_area="W2", basic_allowed="maybe")],
     "row 3, basic_allowed: 'maybe' is not yes or no"),
    ("basic_allowed_on_a_drug_row", [row(basic_allowed="yes")],
     "row 3, basic_allowed: not a field of a drug entry"),
    ("row_without_care_area", [row(care_area="")],
     "row 3, care_area: missing: every row names its care area"),
]
RULES = [r for r in RULES if r[0] != "basic_rate_above_device_max"]


@pytest.mark.parametrize("name, rows, expected", RULES, ids=[r[0] for r in RULES])
def test_check_rule_message_SR_LIB_1(name, rows, expected):
    errors, _ = run(*rows)
    if expected is None:
        assert errors == []
    else:
        assert expected in errors, "\n".join(errors)
        where = expected.split(",")[0]          # nothing reported about other rows
        assert all(e.startswith(where + ",") or e == expected for e in errors), errors


def test_soft_limits_must_lie_inside_hard_limits_SR_LIB_1():
    errors, _ = run(row(hard_min="10", soft_min="5", soft_max="150"))
    assert errors == ["row 3, soft_max: 150 mL/h above hard_max 100 mL/h",
                      "row 3, soft_min: 5 mL/h below hard_min 10 mL/h"]


def test_every_error_is_listed_at_once_in_row_order_SR_LIB_1():
    rows = [row(soft_max="120"),                                   # row 3
            row(drug_id="11", drug_name="B", dose_unit="mg/min"),  # row 4
            row(drug_id="12", drug_name="C", dose_unit="mg/h"),    # row 5
            row(drug_id="13", drug_name="D", hard_max="600",
                weight_min_kg="3", weight_max_kg="90"),            # row 6
            row(drug_id="14", drug_name="E", occlusion_mmhg="2000")]  # row 7
    for i in range(8, 20):                                          # rows 8..19 fine
        rows.append(row(drug_id=str(100 + i), drug_name="OK %d" % i))
    rows.append(row(drug_id="99", drug_name="Last", default="120"))  # row 20
    errors, _ = run(*rows)
    assert errors == [
        "row 3, soft_max: 120 mL/h above hard_max 100 mL/h",
        "row 4, dose_unit: 'mg/min' is not a dose unit (mL/h, mg/h, mcg/h, mcg/kg/min, "
        "mg/kg/h, units/h, mmol/h)",
        "row 5, conc_amount: missing: a dose in mg/h needs a concentration (conc_amount, "
        "conc_unit, conc_volume_ml)",
        "row 6, hard_max: 600 mL/h above the pump's maximum rate 500 mL/h",
        "row 6, weight_min_kg: weight limits on a non-per-kg unit (mL/h)",
        "row 6, weight_max_kg: weight limits on a non-per-kg unit (mL/h)",
        "row 7, occlusion_mmhg: 2000 mmHg above the maximum 1034 mmHg (2 to 20 psi)",
        "row 20, default: 120 mL/h above hard_max 100 mL/h",
    ]


def test_hard_max_needing_more_than_500_ml_h_is_a_warning_not_an_error_SR_LIB_1():
    errors, warnings = run(row(**dict(MG, hard_max="3000")))
    assert errors == []
    assert warnings == ["row 3, hard_max: 3000 mg/h at 5 mg/mL needs 600 mL/h: the pump's "
                        "500 mL/h limit applies first"]
    errors, warnings = run(row(**dict(PER_KG, hard_max="300", weight_max_kg="200")))
    assert errors == [] and warnings == [
        "row 3, hard_max: 300 mcg/kg/min at 5 mg/mL for 200 kg needs 720 mL/h: the pump's "
        "500 mL/h limit applies first"]


def test_care_area_where_nothing_can_be_programmed_is_a_warning_SR_TH_4():
    errors, warnings = run(dict(BASIC, care_area="Empty", basic_allowed="no", hard_max=""))
    assert errors == []
    assert warnings == ["care area 'Empty': no drug entries and basic infusion forbidden: "
                        "nothing can be programmed here"]


def test_library_identity_rules_SR_LIB_1():
    src = sm.loads(csv_text(row()), "csv", overrides={"library_id": 0, "version": 2,
                                                      "model": "way too long a model name"})
    _, problems = ck.check_source(src)
    msgs = [str(p) for p in problems]
    assert "library, library_id: 0 below the minimum 1" in msgs
    assert any(m.startswith("library, model: 'way too long a model name': must be") for m in msgs)
    model, problems = ck.check_source(sm.loads(csv_text(row()), "csv"))
    assert [str(p) for p in ck.require_identity(model)] == [
        "library, library_id: missing: give --library-id or library.library_id in a JSON source",
        "library, version: missing: give --version or library.version in a JSON source"]


def test_override_differing_from_the_source_is_an_error_SR_LIB_1():
    text = ('{"schema_version": 1, "library": {"library_id": 5, "version": 2}, "care_areas": '
            '[{"name": "A", "basic_infusion": {"allowed": false}, "entries": [{"drug_id": 1, '
            '"drug_name": "X", "dose_unit": "mL/h", "hard_max": 5}]}]}')
    _, problems = ck.check_source(sm.loads(text, "json", overrides={"version": 3}))
    assert [str(p) for p in problems] == ["library, version: --version 3 differs from 2 in "
                                          "the source"]
    model, problems = ck.check_source(sm.loads(text, "json", overrides={"version": 2}))
    assert problems == [] and model["library"]["version"] == 2
