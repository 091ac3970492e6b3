"""Drug-library source (SR-LIB-1, SR-TH-3): the published JSON Schema, CSV and JSON reading,
exact decimals, the sample library.
"""
import json
import os
from decimal import Decimal

import jsonschema
import pytest

from firmware import druglib as dl
from host_tools.library import check as ck
from host_tools.library import source as sm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "libraries", "sample_home_infusion.csv")


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def test_published_schema_is_valid_draft_2020_12_SR_LIB_1():
    schema = sm.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == dl.SCHEMA_VERSION
    units = schema["$defs"]["dose_unit"]["enum"]
    assert units == [u[0] for u in dl.DOSE_UNITS if u]          # the pump's unit table
    assert schema["$defs"]["conc_unit"]["enum"] == [u[0] for u in dl.CONC_UNITS if u]
    assert set(schema["$defs"]["entry"]["properties"]) == set(sm.ENTRY_FIELDS)


def test_dose_units_are_exactly_the_spec_list_SR_TH_3():
    assert [u[0] for u in dl.DOSE_UNITS if u] == [
        "mL/h", "mg/h", "mcg/h", "mcg/kg/min", "mg/kg/h", "units/h", "mmol/h"]


def test_sample_library_checks_clean_SR_LIB_1():
    model, problems = ck.check_file(SAMPLE)
    assert problems == [], [str(p) for p in problems]
    areas = [a["name"] for a in model["care_areas"]]
    assert areas == ["Home IV antibiotics", "Parenteral nutrition", "Oncology",
                     "Pain management PCA", "Immune globulin", "Hydration", "Home inotropes"]
    units = {e["dose_unit"] for a in model["care_areas"] for e in a["entries"]}
    assert units == {u[0] for u in dl.DOSE_UNITS if u}          # every unit is exercised
    assert any(e["pca_max_bolus"] is not None for a in model["care_areas"] for e in a["entries"])
    assert {a["basic_allowed"] for a in model["care_areas"]} == {True, False}


def test_json_export_of_the_sample_validates_against_the_published_schema_SR_LIB_1():
    model, _ = ck.check_file(SAMPLE)
    doc = json.loads(sm.to_json(model))
    jsonschema.validate(doc, sm.schema(), cls=jsonschema.Draft202012Validator)


def test_csv_and_json_of_one_library_give_the_same_model_SR_LIB_1():
    model, _ = ck.check_file(SAMPLE)
    src = sm.loads(sm.to_json(model), "json")
    again, problems = ck.check_source(src)
    assert problems == []
    assert sm.content(again) == sm.content(model)
    back = sm.loads(sm.to_csv(again), "csv")
    third, problems = ck.check_source(back)
    assert problems == [] and sm.content(third) == sm.content(model)


def test_numbers_are_exact_decimals_never_floats_SR_TH_3():
    text = json.dumps({"schema_version": 1, "care_areas": [{
        "name": "A", "basic_infusion": {"allowed": False}, "entries": [{
            "drug_id": 1, "drug_name": "X", "dose_unit": "mL/h", "hard_max": 0.3,
            "soft_max": "0.2", "default": 0.1}]}]})
    model, problems = ck.check_source(sm.loads(text, "json"))
    assert problems == []
    e = model["care_areas"][0]["entries"][0]
    assert e["hard_max"] == Decimal("0.3") and e["soft_max"] == Decimal("0.2")
    assert e["default"] + e["soft_max"] == e["hard_max"]          # 0.1 + 0.2 == 0.3 exactly
    assert not any(isinstance(v, float) for v in _walk(sm.content(model)))
    sample, _ = ck.check_file(SAMPLE)
    assert not any(isinstance(v, float) for v in _walk(sm.content(sample)))


def test_csv_variants_semicolons_bom_comments_blank_rows_SR_LIB_1():
    text = ("\ufeff# a comment row\n"
            "Care area;Drug ID;drug_name;dose_unit;hard_max;basic_allowed\n"
            "\n"
            "A;basic;;mL/h;100;yes\n"
            "# another comment\n"
            "A;7;Drug;mL/h;50;\n")
    model, problems = ck.check_source(sm.loads(text.lstrip("\ufeff"), "csv"))
    assert problems == [], [str(p) for p in problems]
    assert [e["drug_id"] for e in model["care_areas"][0]["entries"]] == [0, 7]
    assert model["care_areas"][0]["entries"][1]["_where"] == "row 6"


def test_bom_in_a_file_is_accepted(tmp_path):
    p = tmp_path / "lib.csv"
    p.write_bytes(b"\xef\xbb\xbfcare_area,drug_id,drug_name,dose_unit,hard_max,basic_allowed\n"
                  b"A,basic,,mL/h,,no\nA,1,X,mL/h,5,\n")
    model, problems = ck.check_file(str(p))
    assert problems == [] and model["care_areas"][0]["name"] == "A"


@pytest.mark.parametrize("text, expected", [
    ("care_area,drug_id,drug_name,dose_unit,hard_maxx\n",
     "row 1, column 5: unknown column 'hard_maxx' (did you mean 'hard_max'?)"),
    ("care_area,drug_id,drug_name,dose_unit\n", "row 1, hard_max: required column missing"),
    ("", "source: empty file: no header row"),
    ("care_area,drug_id,drug_name,dose_unit,hard_max,drug_id\n",
     "row 1, drug_id: column given twice"),
])
def test_csv_header_problems_SR_LIB_1(text, expected):
    src = sm.loads(text, "csv")
    _, problems = ck.check_source(src)
    assert expected in [str(p) for p in problems], [str(p) for p in problems]


def test_bad_json_is_reported_with_line_and_column_SR_LIB_1():
    _, problems = ck.check_source(sm.loads('{"schema_version": 1,\n "care_areas": [}', "json"))
    assert len(problems) == 1
    assert str(problems[0]).startswith("source line 2 column 17: not valid JSON")
    _, problems = ck.check_source(sm.loads('{"x": NaN}', "json"))
    assert "not valid JSON" in str(problems[0]) or "NaN" in str(problems[0])


def test_unreadable_and_non_utf8_files(tmp_path):
    _, problems = ck.check_file(str(tmp_path / "missing.csv"))
    assert "cannot read" in str(problems[0])
    p = tmp_path / "latin1.csv"
    p.write_bytes(b"care_area,drug_id\n\xe9\n")
    _, problems = ck.check_file(str(p))
    assert "not UTF-8" in str(problems[0])


def test_json_locations_name_the_path_and_drug_SR_LIB_1():
    doc = {"schema_version": 1, "care_areas": [{"name": "A", "basic_infusion": {
        "allowed": False}, "entries": [{"drug_id": 3, "drug_name": "Heparin",
                                        "conc_amount": 100, "conc_unit": "units",
                                        "conc_volume_ml": 1, "dose_unit": "units/h",
                                        "soft_max": 2000, "hard_max": 1500}]}]}
    _, problems = ck.check_source(sm.loads(json.dumps(doc), "json"))
    assert [str(p) for p in problems] == [
        "care_areas[0].entries[0] (Heparin), soft_max: 2000 units/h above hard_max 1500 units/h"]
