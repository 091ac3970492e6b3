"""Scenarios are data (issue 7 item 5): the files under sim/scenarios/, their JSON Schema,
the portable loader (same result under CPython and MicroPython), refusal of malformed
files with a message naming the problem, ``sim_report --list`` and the unknown-name error,
and the home-therapy scenarios (run once the therapy modes have landed; until then their
plumbing runs on a stand-in mode built on ``program_continuous``).
"""
import copy
import json
import os
import subprocess

import jsonschema
import pytest
from click.testing import CliRunner

from firmware.app import PumpApp
from hal import KEY_BOLUS
from host_tools import mpy_runtime
from host_tools import sim_report as report
from sim import scenario_data as sd
from sim.prng import XorShift32, poisson_times_s
from sim.scenario import run_scenario

NAMES = sd.list_scenarios()
LEGACY = ["air_bubble", "continuous_24h", "picc_occlusion"]
HOME = ["antibiotic_q8h_24h", "chemo_46h", "hydration", "ivig_titration", "pca_poisson",
        "tpn_24h_tapers"]



def _raw(name):
    with open(os.path.join(sd.SCENARIO_DIR, name + ".json")) as f:
        return json.load(f)


def test_every_scenario_file_is_there():
    assert set(LEGACY + HOME) <= set(NAMES)


def test_schema_is_draft_2020_12():
    schema = sd.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", NAMES)
def test_scenario_file_matches_the_schema(name):
    data = _raw(name)
    jsonschema.Draft202012Validator(sd.schema()).validate(data)
    assert sd.validate(data, sd.schema()) is None     # the portable checker agrees
    spec = sd.load_scenario(name)
    assert spec["name"] == name and spec["title"]
    for t, kind, *_ in spec["events"]:
        assert 0 <= t < spec["duration_s"], (name, t, kind)


@pytest.mark.parametrize("name", HOME)
def test_home_therapies_have_faults_and_causes(name):
    spec = sd.load_scenario(name)
    assert "therapy" in spec and spec["notes"]
    assert len(spec["causes"]) >= 2, "faults mixed in"


# ---- malformed files are refused, naming the problem ----------------------------------
def _broken(change):
    data = _raw("picc_occlusion")
    change(data)
    return data


MALFORMED = [
    ("unknown event kind", lambda d: d["events"].append([100, "clmap", True]),
     "events[3][1]: \"clmap\" is not one of: clamp, bubble"),
    ("event argument type", lambda d: d["events"].__setitem__(0, [3600, "clamp", "yes"]),
     "events[0][2]: \"yes\" is not of type boolean"),
    ("missing argument", lambda d: d["events"].__setitem__(0, [3600, "bubble"]),
     "events[0]: needs at least 3 items"),
    ("negative time", lambda d: d["events"].__setitem__(0, [-1, "clamp", True]),
     "events[0][0]: -1 is below the minimum 0"),
    ("unknown field", lambda d: d.__setitem__("durration_s", 5),
     "unknown field 'durration_s'"),
    ("missing field", lambda d: d.pop("preset"), "missing required field 'preset'"),
    ("bad preset", lambda d: d.__setitem__("preset", "arterial"),
     "preset: \"arterial\" is not one of: picc, peripheral"),
    ("float volume", lambda d: d["program"].__setitem__("vtbi_ul", 20.5),
     "program.vtbi_ul: 20.5 is not of type integer"),
    ("program and therapy", lambda d: d.__setitem__(
        "therapy", {"mode": "prime", "volume_ul": 500}),
     "needs exactly one of 'program', 'therapy' (both given)"),
    ("unknown mode", lambda d: (d.pop("program"), d.__setitem__(
        "therapy", {"mode": "bolus"})), "therapy.mode: \"bolus\" is not one of: continuous"),
    ("mode field missing", lambda d: (d.pop("program"), d.__setitem__(
        "therapy", {"mode": "pca", "basal_ul_per_h": 500})),
     "therapy: missing required field 'bolus_ul'"),
    ("too many steps", lambda d: (d.pop("program"), d.__setitem__(
        "therapy", {"mode": "steps", "steps": [[1000, 100]] * 25, "kvo_ul_per_h": 0})),
     "therapy.steps: at most 24 items, has 25"),
    ("field of another mode", lambda d: (d.pop("program"), d.__setitem__(
        "therapy", {"mode": "prime", "volume_ul": 500, "lockout_s": 600})),
     "therapy: unknown field 'lockout_s'"),
    ("cause by number", lambda d: d.__setitem__("causes", {"1": 3600}),
     "causes.1 (name): \"1\" does not match"),
]
SEMANTIC = [
    ("unknown alarm", lambda d: d.__setitem__("causes", {"OCCLUSION": 3600}),
     "causes: unknown alarm 'OCCLUSION' (choose from: AIR_BUBBLE"),
    ("event after the end", lambda d: d["events"].append([7200, "ack", None]),
     "events[3]: time 7200 s is not before the end of the run (7200 s)"),
    ("presses without therapy", lambda d: d.__setitem__(
        "patient_presses", {"mean_interval_s": 900, "seed": 7}),
     "patient_presses: needs a therapy"),
    ("not an alarm", lambda d: d.__setitem__("causes", {"PRIORITY_HIGH": 10}),
     "causes: unknown alarm 'PRIORITY_HIGH'"),
]


@pytest.mark.parametrize("what,change,message", MALFORMED + SEMANTIC,
                         ids=[m[0] for m in MALFORMED + SEMANTIC])
def test_malformed_scenario_is_refused_with_the_problem_named(what, change, message):
    data = _broken(change)
    with pytest.raises(sd.ScenarioError) as e:
        sd.prepare(data, "broken")
    assert str(e.value).startswith("broken.json: "), str(e.value)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("what,change,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_schema_refuses_what_the_portable_checker_refuses(what, change, message):
    assert not jsonschema.Draft202012Validator(sd.schema()).is_valid(_broken(change))


def test_not_json_and_unknown_name_are_refused(tmp_path):
    (tmp_path / "bad.json").write_text('{"title": "x",')
    (tmp_path / "scenario.schema.json").write_text("{}")
    with pytest.raises(sd.ScenarioError, match=r"bad\.json: not valid JSON"):
        sd.load_scenario("bad", str(tmp_path))
    with pytest.raises(sd.ScenarioError, match="unknown scenario '../x'; choose from: bad"):
        sd.load_scenario("../x", str(tmp_path))


def test_unsupported_schema_keyword_is_refused_not_ignored():
    with pytest.raises(sd.ScenarioError, match="keyword 'uniqueItems' is not supported"):
        sd.validate([1], {"type": "array", "uniqueItems": True})


# ---- the PRNG and the loader on both runtimes -----------------------------------------
def test_xorshift_reference_values_and_poisson_mean():
    rng = XorShift32(1)
    assert [rng.next_u32() for _ in range(3)] == [270369, 67634689, 2647435461]
    times = poisson_times_s(7, 900, 0, 900 * 2000)
    assert 1800 <= len(times) <= 2200                 # ~2000 events, mean interval 900 s
    assert times == poisson_times_s(7, 900, 0, 900 * 2000)


LOADER_SCRIPT = """
import json, sys
from sim import scenario_data as sd
out = {}
for name in sd.list_scenarios():
    out[name] = sd.load_scenario(name)
try:
    sd.load_scenario("nope")
except sd.ScenarioError as e:
    out["_unknown"] = str(e)
bad = sd.load_scenario("picc_occlusion")
bad["events"] = [[10, "clmap", True]]
try:
    sd.prepare(bad, "broken")
except sd.ScenarioError as e:
    out["_malformed"] = str(e)
json.dump(out, sys.stdout)
"""


def _cpython_loader_output():
    out = {name: sd.load_scenario(name) for name in sd.list_scenarios()}
    with pytest.raises(sd.ScenarioError) as e:
        sd.load_scenario("nope")
    out["_unknown"] = str(e.value)
    bad = sd.load_scenario("picc_occlusion")
    bad["events"] = [[10, "clmap", True]]
    with pytest.raises(sd.ScenarioError) as e:
        sd.prepare(bad, "broken")
    out["_malformed"] = str(e.value)
    return json.loads(json.dumps(out))


def test_loader_gives_the_same_scenarios_under_micropython():
    exe = mpy_runtime.micropython_executable()
    if not exe:
        pytest.skip("micropython not installed")
    proc = subprocess.run([exe, "-c", LOADER_SCRIPT], cwd=mpy_runtime.REPO,
                          env=mpy_runtime.micropython_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    mpy = json.loads(proc.stdout)
    cpy = _cpython_loader_output()
    assert sorted(mpy) == sorted(cpy)
    for name in cpy:
        assert mpy[name] == cpy[name], name
    assert len(mpy["pca_poisson"]["press_times_s"]) > 50


# ---- the report's command line ------------------------------------------------------------
def test_list_shows_every_scenario_with_its_title():
    result = CliRunner().invoke(report.main, ["--list"])
    assert result.exit_code == 0, result.output
    for name in NAMES:
        line = [ln for ln in result.output.splitlines() if ln.split()[0] == name]
        assert line and sd.load_scenario(name)["title"] in line[0]


def test_unknown_scenario_is_a_clear_error_listing_the_valid_ones():
    result = CliRunner().invoke(report.main, ["--scenario", "picc_oclusion",
                                              "--runtime", "cpython"])
    assert result.exit_code != 0
    assert "unknown scenario 'picc_oclusion'; choose from: " in result.output
    for name in NAMES:
        assert name in result.output


def test_make_sim_takes_a_scenario_name():
    with open(os.path.join(mpy_runtime.REPO, "Makefile")) as f:
        makefile = f.read()
    assert "--scenario $(or $(SCENARIO),picc_occlusion)" in makefile


# ---- the therapy-mode path, on a stand-in until firmware/therapy lands ------------------
def _check_home_result(result, spec):
    assert result["event_errors"] == [], result["event_errors"]
    raised = {}
    for a in result["alarms"]:
        raised.setdefault(a["name"], []).append(a)
    from firmware import alarms as al
    for cause_name in spec["causes"]:
        name = al.name(sd.alarm_id(cause_name))
        assert name in raised, (cause_name, [a["name"] for a in result["alarms"]])
        # <= 1 h: PCA at a 0.5 mL/h basal needs ~48 min to reach 300 mmHg without a bolus
        assert any(a["latency_s"] is not None and 0 <= a["latency_s"] <= 3600
                   for a in raised[name]), (cause_name, raised[name])
    phases = result["phases"]
    assert phases, "volumes per phase from app.mode.report()"
    for ph in phases:
        assert isinstance(ph["name"], str) and ph["programmed_ul"] >= 0 <= ph["delivered_ul"]
    assert all("unseen" not in p[2] for p in result["presses"]), result["presses"]
    if spec["therapy"]["mode"] != "pca":
        # SR-TH-1: the whole plan, to the microstep (the core's VTBI is the plan's sum),
        # and each phase exactly its volume
        vtbi_steps = result["programmed_ul"] * 1000000 // result["ustep_volume_pl"]
        assert result["delivered_steps"] == vtbi_steps, (result["delivered_steps"], vtbi_steps)
        for ph in phases:
            assert ph["delivered_ul"] == ph["programmed_ul"], ph


def test_pca_presses_reach_the_mode_through_the_bolus_key_with_bounce_SR_TH_6():
    result = run_scenario("pca_poisson")
    spec = sd.load_scenario("pca_poisson")
    assert result["event_errors"] == []
    assert len(result["presses"]) == len(set(spec["press_times_s"]) | {7200, 7230, 7290})
    summary = report.press_summary(result)
    assert summary.get("unseen", 0) == 0, summary          # one answer per physical press
    assert summary["granted"] == result["boluses_granted"]
    assert summary["denied:lockout"] == result["boluses_denied"]["lockout"]


@pytest.mark.parametrize("name", HOME)
def test_home_therapy_scenario_SR_TH_1(name, tmp_path):
    result = run_scenario(name)
    spec = sd.load_scenario(name)
    _check_home_result(result, spec)
    text = report.report_text(dict(result, wall_s=1.0))
    assert "Volumes per phase" in text
    report.plot(result, str(tmp_path / "plot.png"))


def test_pca_grants_and_denies_inside_lockout_SR_TH_1():
    result = run_scenario("pca_poisson")
    assert result["boluses_granted"] > 0
    assert result["boluses_denied"].get("lockout", 0) > 0, result["boluses_denied"]
    scripted = [p for p in result["presses"] if p[1] == "scripted"]
    assert all(p[2].startswith("denied") for p in scripted[1:]), scripted


def test_home_therapy_same_on_both_runtimes():
    cpy = report.run_cpython("ivig_titration")
    mpy = report.run_micropython("ivig_titration")
    assert report.compare(cpy, mpy) == []
    assert cpy["phases"] == mpy["phases"]


