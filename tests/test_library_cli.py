"""`pumpctl library check/compile/show/diff` (SR-LIB-1, SR-LIB-2, SR-SVC-3): exit codes and
messages through click's CliRunner.  0 = success, 1 = refused (every problem printed),
2 = bad usage.
"""
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from host_tools.library import check as ck
from host_tools.library import source as sm
from host_tools.pumpctl.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "libraries", "sample_home_infusion.csv")


@pytest.fixture
def work(tmp_path):
    key = tmp_path / "fleet.key"
    key.write_bytes(bytes(range(32)))
    os.chmod(key, 0o600)
    other = tmp_path / "other.key"
    other.write_text("ab" * 32 + "\n")
    os.chmod(other, 0o600)
    shutil.copy(SAMPLE, tmp_path / "lib.csv")
    return tmp_path


def pumpctl(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def compile_sample(work, out="lib.bin", version=1, src="lib.csv"):
    return pumpctl("library", "compile", work / src, "--key", work / "fleet.key", "--out",
                   work / out, "--library-id", 7, "--version", version)


def test_check_clean_library_exits_0_with_summary_SR_LIB_1(work):
    r = pumpctl("library", "check", work / "lib.csv")
    assert r.exit_code == 0, r.output
    assert "OK: 7 care areas, 21 drug entries (16 drugs" in r.output


def test_check_with_errors_lists_them_all_and_exits_1_SR_LIB_1(work):
    text = (work / "lib.csv").read_text()
    text = text.replace("Vancomycin,5,mg,1,mg/h,500,40,500,20,600",
                        "Vancomycin,5,mg,1,mg/h,500,40,700,20,600")
    text = text.replace("Ertapenem,1,g,50,mL/h", "Ertapenem,1,g,50,ml/h")
    (work / "bad.csv").write_text(text)
    r = pumpctl("library", "check", work / "bad.csv")
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert "row 4, soft_max: 700 mg/h above hard_max 600 mg/h" in lines
    assert any(line.startswith("row 8, dose_unit: 'ml/h' is not a dose unit") for line in lines)
    assert lines[-1].endswith("bad.csv: 2 errors, 0 warnings")


def test_check_unreadable_file_exits_1(work):
    r = pumpctl("library", "check", work / "missing.csv")
    assert r.exit_code == 1 and "cannot read" in r.output


def test_compile_then_show_SR_LIB_2(work):
    r = compile_sample(work)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "library 7 version 1 for AMB-PUMP-1" in r.output
    r = pumpctl("library", "show", work / "lib.bin", "--key", work / "fleet.key")
    assert r.exit_code == 0, r.output
    for text in ("lib", "7 / 1", "AMB-PUMP-1", "CRC-32 and HMAC-SHA256 tag verified",
                 "Home IV antibiotics", "Vancomycin", "Fluorouracil", "Home inotropes"):
        assert text in r.output, text


def test_show_as_csv_gives_an_equivalent_source_SR_LIB_2(work):
    compile_sample(work)
    r = pumpctl("library", "show", work / "lib.bin", "--key", work / "fleet.key", "--as", "csv")
    assert r.exit_code == 0
    shown, problems = ck.check_source(sm.loads(r.output, "csv"))
    source, _ = ck.check_file(str(work / "lib.csv"))
    assert problems == []
    key = lambda e: (e["drug_id"], str(ck.concentration_key(e)))  # noqa: E731
    for a, b in zip(shown["care_areas"], source["care_areas"]):
        assert a["name"] == b["name"]
        assert sorted(sm.content({"library": {}, "care_areas": [a]})["care_areas"][0]["entries"],
                      key=key) == sorted(sm.content({"library": {}, "care_areas": [b]})[
                          "care_areas"][0]["entries"], key=key)
    r = pumpctl("library", "show", work / "lib.bin", "--key", work / "fleet.key", "--as", "json",
                "--care-area", "Oncology")
    doc = json.loads(r.output)
    assert [a["name"] for a in doc["care_areas"]] == ["Oncology"]


def test_compile_refuses_a_library_with_errors_and_writes_nothing_SR_LIB_1(work):
    text = (work / "lib.csv").read_text().replace("Morphine,1,mg,1,mg/h,0,,5,0,10",
                                                  "Morphine,1,mg,1,mg/h,0,,15,0,10")
    (work / "bad.csv").write_text(text)
    r = compile_sample(work, src="bad.csv")
    assert r.exit_code == 1
    assert "soft_max: 15 mg/h above hard_max 10 mg/h" in r.output
    assert "nothing written" in r.output and not (work / "lib.bin").exists()


def test_compile_needs_identity_for_csv_and_a_valid_key(work):
    r = pumpctl("library", "compile", work / "lib.csv", "--key", work / "fleet.key", "--out",
                work / "x.bin")
    assert r.exit_code == 1 and "library, library_id: missing: give --library-id" in r.output
    (work / "bad.key").write_bytes(b"123")
    r = pumpctl("library", "compile", work / "lib.csv", "--key", work / "bad.key", "--out",
                work / "x.bin", "--library-id", 1, "--version", 1)
    assert r.exit_code == 1 and "a fleet key is 32 raw bytes or 64 hex digits" in r.output
    r = pumpctl("library", "compile", work / "lib.csv", "--key", work / "fleet.key", "--out",
                work / "x.bin", "--library-id", 0, "--version", 1)
    assert r.exit_code == 2                                   # usage error from click
    assert not (work / "x.bin").exists()


def test_show_refuses_wrong_key_model_and_damage_SR_LIB_2(work):
    compile_sample(work)
    r = pumpctl("library", "show", work / "lib.bin", "--key", work / "other.key")
    assert r.exit_code == 1 and "authentication tag mismatch" in r.output
    r = pumpctl("library", "show", work / "lib.bin", "--key", work / "fleet.key", "--model",
                "AMB-PUMP-2")
    assert r.exit_code == 1 and "model 'AMB-PUMP-1' not 'AMB-PUMP-2'" in r.output
    data = bytearray((work / "lib.bin").read_bytes())
    data[500] ^= 0x04
    (work / "bad.bin").write_bytes(bytes(data))
    r = pumpctl("library", "show", work / "bad.bin", "--key", work / "fleet.key")
    assert r.exit_code == 1 and "bad.bin refused: CRC mismatch" in r.output
    (work / "short.bin").write_bytes(bytes(data[:1000]))
    r = pumpctl("library", "show", work / "short.bin", "--key", work / "fleet.key")
    assert r.exit_code == 1 and "truncated at byte 1000" in r.output


def test_diff_says_what_changed_per_field_SR_LIB_2(work):
    compile_sample(work, "v1.bin", 1)
    text = (work / "lib.csv").read_text()
    text = text.replace("Vancomycin,5,mg,1,mg/h,500,40,500,20,600",
                        "Vancomycin,5,mg,1,mg/h,500,40,550,20,650")
    text = "\n".join(line for line in text.splitlines() if ",Ertapenem," not in line) + "\n"
    text += "Oncology,302,Irinotecan,2,mg,1,mg/h,,,,,400,,,,,,,,,,,,\n"
    text = text.replace("Home inotropes,basic,,,,,,,,,,,,,,,,,,,,,,no",
                        "Home inotropes,basic,,,,,mL/h,,,,,100,,,,,,,,,,,,yes")
    (work / "v2.csv").write_text(text)
    assert compile_sample(work, "v2.bin", 2, src="v2.csv").exit_code == 0
    r = pumpctl("library", "diff", work / "v1.bin", work / "v2.bin", "--key", work / "fleet.key")
    assert r.exit_code == 0, r.output
    out = r.output
    assert ("~ Home IV antibiotics / Vancomycin 5 mg/mL: soft_max 500 -> 550 mg/h; "
            "hard_max 600 -> 650 mg/h") in out
    assert "- Home IV antibiotics / Ertapenem 1 g/50 mL (mL/h)" in out
    assert "+ Oncology / Irinotecan 2 mg/mL (mg/h)" in out
    assert "~ care area 'Home inotropes': basic infusion forbidden -> allowed" in out
    assert "+ Home inotropes / Basic infusion (mL/h)" in out
    assert "~ library: version 1 -> 2; name lib -> v2" in out
    assert out.strip().endswith("2 added, 1 removed, 3 changed")
    r = pumpctl("library", "diff", work / "lib.csv", work / "v2.csv")   # sources, no key
    assert r.exit_code == 0 and "2 added, 1 removed, 2 changed" in r.output
    r = pumpctl("library", "diff", work / "v1.bin", work / "v1.bin", "--key", work / "fleet.key")
    assert r.exit_code == 0 and "no differences" in r.output


def test_diff_of_a_binary_needs_the_key_and_a_clean_source(work):
    compile_sample(work)
    r = pumpctl("library", "diff", work / "lib.bin", work / "lib.csv")
    assert r.exit_code == 1 and "is a compiled library: give --key" in r.output
    (work / "bad.csv").write_text((work / "lib.csv").read_text().replace(",mg/h,", ",mg/min,", 1))
    r = pumpctl("library", "diff", work / "lib.csv", work / "bad.csv")
    assert r.exit_code == 1 and "bad.csv has 1 errors" in r.output


def test_library_group_is_part_of_pumpctl_SR_SVC_3():
    r = pumpctl("--help")
    assert r.exit_code == 0 and "library" in r.output
    r = pumpctl("library", "--help")
    for cmd in ("check", "compile", "show", "diff"):
        assert cmd in r.output


def test_compile_json_source_takes_its_identity_from_the_file_SR_LIB_2(work):
    src = os.path.join(REPO, "tests", "fixtures", "library_small.json")
    r = pumpctl("library", "compile", src, "--key", work / "fleet.key", "--out", work / "j.bin")
    assert r.exit_code == 0, r.output
    assert "library 42 version 3 for AMB-PUMP-1" in r.output
    r = pumpctl("library", "compile", src, "--key", work / "fleet.key", "--out", work / "k.bin",
                "--version", 4)
    assert r.exit_code == 1 and "library, version: --version 4 differs from 3" in r.output
