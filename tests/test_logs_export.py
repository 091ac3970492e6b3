"""`logs export` (CSV, JSON, FHIR R4 Bundle) and `logs plot` (SR-LOG-4).

Records come from a scenario run in process (firmware on the sim HAL, log decoded with
firmware.eventlog.decode) or are built directly, as dicts of the shape
host_tools.pumpctl.logfile.read_records returns.
"""
import csv
import io
import json
import os
import sys
import types

import click
import pytest
from click.testing import CliRunner

from firmware import alarms as al
from firmware import eventlog, events
from host_tools import logs_export as le

from tests.mpy import library_pump
from tests.mpy.test_app import make_pump, run_for


def _records_of(app):
    out = []
    for raw in app.log.read(1, 100000):
        seq, etype, rtc_s, mono_ms, a, b = eventlog.decode(raw)
        out.append(dict(seq=seq, type=etype, type_name=events.name(etype), rtc_s=rtc_s,
                        mono_ms=mono_ms, a=a, b=b, link=None))
    return out


def _rec(seq, etype, a=0, b=0, rtc_s=1795000000):
    return dict(seq=seq, type=etype, type_name=events.name(etype), rtc_s=rtc_s,
                mono_ms=(rtc_s - 1795000000) * 1000, a=a, b=b, link=None)


@pytest.fixture(scope="module")
def scenario():
    """Boot; 1 mL at 60 mL/h completes into KVO, acknowledged; a 20 mL/h infusion is
    paused, resumed and then stopped by a downstream occlusion."""
    app, world, hal = make_pump()
    app.program_continuous(60000, 1000, kvo_ul_per_h=1000)
    app.start()
    run_for(app, world, 90)
    app.acknowledge()
    run_for(app, world, 5)
    app.pause()
    app.program_continuous(20000, 50000)
    app.start()
    run_for(app, world, 60)
    app.pause()
    run_for(app, world, 10)
    app.start()
    run_for(app, world, 30)
    world.clamp(True)
    run_for(app, world, 300)
    assert app.alarms.is_active(al.OCCLUSION_DOWN)
    return _records_of(app)


def _types(records):
    return [r["type"] for r in records]


def test_scenario_covers_the_therapy_and_alarm_events(scenario):
    t = _types(scenario)
    for etype in (events.THERAPY_PROGRAMMED, events.THERAPY_STARTED, events.THERAPY_PAUSED,
                  events.THERAPY_RESUMED, events.THERAPY_STOPPED, events.THERAPY_COMPLETED,
                  events.ALARM_RAISED, events.ALARM_ACKNOWLEDGED, events.ALARM_CLEARED):
        assert etype in t, events.name(etype)


def test_fhir_export_of_a_scenario_validates_and_round_trips_SR_LOG_4(scenario, tmp_path):
    from fhir.resources.R4B.bundle import Bundle
    out = tmp_path / "log.fhir.json"
    n = le.export_records(scenario, "fhir", str(out), pump_serial="VP-0042")
    assert n == len(scenario)
    text = out.read_text()
    parsed = Bundle.model_validate_json(text)           # validates against the models
    built = le.build_fhir_bundle(le.decode_records(scenario), "VP-0042")
    assert parsed.model_dump() == built.model_dump()    # round trip: nothing lost
    again = Bundle.model_validate_json(parsed.model_dump_json())
    assert again.model_dump() == parsed.model_dump()
    assert parsed.type == "collection"

    by_type = {}
    for entry in parsed.entry:
        by_type.setdefault(entry.resource.get_resource_type(), []).append(entry)
    device = by_type["Device"][0]
    assert device.resource.serialNumber == "VP-0042"
    assert device.resource.version[0].value == le.FIRMWARE_VERSION

    admins = [e.resource for e in by_type["MedicationAdministration"]]
    assert [a.status for a in admins] == ["completed", "stopped"]
    first, second = admins
    assert first.dosage.rateQuantity.value == 60.0
    assert first.dosage.rateQuantity.system == "http://unitsofmeasure.org"
    assert first.dosage.rateQuantity.code == "mL/h"
    assert first.dosage.dose.code == "mL" and 0.98 <= first.dosage.dose.value <= 1.0
    assert first.effectivePeriod.start is not None and first.effectivePeriod.end is not None
    assert first.device[0].reference == device.fullUrl
    assert second.dosage.rateQuantity.value == 20.0
    assert "OCCLUSION_DOWNSTREAM" in second.statusReason[0].text
    assert second.dosage.dose.value > 0

    issues = [e.resource for e in by_type["DetectedIssue"]]
    names = [i.code.coding[0].display for i in issues]
    assert "OCCLUSION DOWNSTREAM" in names and "COMPLETE - KVO" in names
    occl = issues[names.index("OCCLUSION DOWNSTREAM")]
    assert occl.severity == "high"
    assert occl.identifiedPeriod.end is None                  # still active at the end
    assert occl.implicated[0].reference == by_type["MedicationAdministration"][1].fullUrl
    kvo = issues[names.index("COMPLETE - KVO")]
    assert kvo.severity == "moderate" and kvo.identifiedPeriod.end is not None
    assert occl.author.reference == device.fullUrl


def test_fhir_export_joins_the_library_context_SR_LOG_4(tmp_path):
    from fhir.resources.R4B.bundle import Bundle
    lib_b = (3 << 16) | 7                         # library version 3, drug 7
    soft_a = 7 | (2 << 16) | (2 << 24)            # drug 7, mg/h, above soft max
    records = [_rec(1, events.POWER_ON), _rec(2, events.SELF_TEST_PASSED, 8, 0),
               _rec(3, events.THERAPY_CONTEXT, 1234, lib_b),
               _rec(4, events.THERAPY_PROGRAMMED, 12500, 100000),
               _rec(5, events.SOFT_LIMIT_OVERRIDE, soft_a, 650000),
               _rec(6, events.ALARM_RAISED, al.SOFT_LIMIT_OVERRIDE, al.PRIORITY_LOW),
               _rec(7, events.THERAPY_STARTED, 0, 0, rtc_s=1795000010),
               _rec(8, events.THERAPY_PAUSED, 2500, 0, rtc_s=1795000730),
               # a program without context (program_continuous) after a refused one
               _rec(9, events.THERAPY_CONTEXT, 1234, lib_b, rtc_s=1795000740),
               _rec(10, events.PROGRAM_REFUSED, 1, 2, rtc_s=1795000740),
               _rec(11, events.THERAPY_PROGRAMMED, 5000, 1000, rtc_s=1795000750)]
    out = tmp_path / "b.json"
    le.export_records(records, "fhir", str(out), pump_serial="VP-1",
                      library={7: "Vancomycin"})
    bundle = Bundle.model_validate_json(out.read_text())
    admins = [e.resource for e in bundle.entry
              if e.resource.get_resource_type() == "MedicationAdministration"]
    assert len(admins) == 2
    coding = admins[0].medicationCodeableConcept.coding[0]
    assert coding.code == "7" and coding.display == "Vancomycin"
    assert coding.system.endswith(":1234:3")
    assert admins[0].status == "stopped"          # replaced while paused
    assert admins[0].dosage.rateQuantity.value == 12.5
    assert admins[0].dosage.dose.value == 2.5
    assert admins[1].status == "not-done"
    assert admins[1].medicationCodeableConcept.text.startswith("Basic infusion")
    issue = [e.resource for e in bundle.entry
             if e.resource.get_resource_type() == "DetectedIssue"][0]
    assert issue.severity == "low"

    rows = json.loads(_export_text(records, "json"))["records"]
    soft = rows[4]
    assert soft["event"] == "SOFT_LIMIT_OVERRIDE"
    assert soft["drug_id"] == 7 and soft["dose_unit"] == "mg/h"
    assert soft["dose"] == "650" and soft["soft_side"] == "above soft max"
    assert rows[2]["library_id"] == 1234 and rows[2]["library_version"] == 3


def _export_text(records, fmt, **kw):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out")
        le.export_records(records, fmt, path, **kw)
        with open(path) as f:
            return f.read()


def test_csv_has_one_row_per_record_with_named_units_SR_LOG_4(scenario):
    rows = list(csv.DictReader(io.StringIO(_export_text(scenario, "csv"))))
    assert [int(r["seq"]) for r in rows] == [r["seq"] for r in scenario]
    assert list(rows[0].keys()) == le.CSV_COLUMNS
    programmed = [r for r in rows if r["event"] == "THERAPY_PROGRAMMED"]
    assert programmed[0]["rate_ul_per_h"] == "60000" and programmed[0]["vtbi_ul"] == "1000"
    raised = [r for r in rows if r["event"] == "ALARM_RAISED"]
    assert "OCCLUSION DOWNSTREAM" in [r["alarm_name"] for r in raised]
    assert set(r["alarm_priority"] for r in raised) <= {"LOW", "MEDIUM", "HIGH"}
    stopped = [r for r in rows if r["event"] == "THERAPY_STOPPED"][0]
    assert stopped["faults"] == "OCCLUSION_DOWNSTREAM" and int(stopped["delivered_ul"]) > 0
    completed = [r for r in rows if r["event"] == "THERAPY_COMPLETED"][0]
    assert completed["kvo_follows"] == "true"
    assert rows[0]["rtc_utc"] == "2026-11-18T11:06:40Z"


def test_json_has_one_object_per_record_SR_LOG_4(scenario):
    doc = json.loads(_export_text(scenario, "json", pump_serial="VP-9"))
    assert doc["pump_serial"] == "VP-9" and doc["record_count"] == len(scenario)
    recs = doc["records"]
    assert [r["seq"] for r in recs] == [r["seq"] for r in scenario]
    started = [r for r in recs if r["event"] == "THERAPY_STARTED"][0]
    assert started["delivered_ul"] == 0 and "rate_ul_per_h" not in started


def test_every_event_type_decodes_and_unknown_types_pass_through():
    records = [_rec(i + 1, code, 5, 3) for i, code in enumerate(sorted(events.NAMES))]
    records.append(_rec(len(records) + 1, 99, -1, 2))      # a type this host does not know
    records.append(dict(_rec(len(records) + 1, events.POWER_ON), link=b"\x01\x02"))
    records.append(dict(_rec(len(records) + 1, events.POWER_ON), link=0xDEADBEEF))
    decoded = le.decode_records(records)
    assert decoded[-3]["event"] == "EVENT_99" and decoded[-3]["a"] == -1
    assert decoded[-2]["link"] == "0102" and decoded[-1]["link"] == 0xDEADBEEF
    for r in decoded:
        assert set(r) - set(le.CSV_COLUMNS) == set(), r
    for fmt in le.FORMATS:
        assert _export_text(records, fmt)


def test_service_link_events_decode_to_named_fields_SR_LOG_1():
    """Issue 9 item 1: rejected frames (rate-limited), the end of an episode, a lockout."""
    from firmware import protocol
    recs = [_rec(1, events.SERVICE_FRAME_REJECTED, protocol.E_BAD_ARGS | protocol.STATUS << 8, 7),
            _rec(2, events.SERVICE_FRAME_REJECTED, protocol.E_BAD_CRC, 1),
            _rec(3, events.SERVICE_REJECTS_ENDED, protocol.E_BAD_CRC, 12),
            _rec(4, events.SERVICE_LOCKOUT, 30, 3)]
    d = le.decode_records(recs)
    assert {k: d[0][k] for k in ("command_code", "command", "result_code", "result",
                                 "frames")} == {
        "command_code": protocol.STATUS, "command": "STATUS",
        "result_code": protocol.E_BAD_ARGS, "result": "BAD_ARGS", "frames": 7}
    assert (d[1]["command_code"], d[1]["command"], d[1]["result"], d[1]["frames"]) == (
        0, "UNDECODED", "BAD_CRC", 1)
    assert (d[2]["result_code"], d[2]["result"], d[2]["frames"]) == (
        protocol.E_BAD_CRC, "BAD_CRC", 12) and "command" not in d[2]
    assert (d[3]["lockout_s"], d[3]["failures_in_a_row"]) == (30, 3)
    if hasattr(events, "ALARM_ESCALATED"):          # issue 9 alarm work: a = id, b = priority
        e = le.decode_record(_rec(5, events.ALARM_ESCALATED, al.BATTERY_LOW, al.PRIORITY_HIGH))
        assert (e["alarm_name"], e["alarm_priority"]) == (al.name(al.BATTERY_LOW), "HIGH")
    rows = list(csv.DictReader(io.StringIO(_export_text(recs, "csv"))))
    assert rows[0]["command"] == "STATUS" and rows[0]["frames"] == "7"
    assert rows[3]["lockout_s"] == "30"


def test_clear_errors_for_bad_format_empty_log_and_unwritable_output(scenario, tmp_path):
    with pytest.raises(click.ClickException, match="unknown export format 'xml'"):
        le.export_records(scenario, "xml", str(tmp_path / "x"))
    for fmt in le.FORMATS:
        with pytest.raises(click.ClickException, match="empty"):
            le.export_records([], fmt, str(tmp_path / "x"))
    with pytest.raises(click.ClickException, match="empty"):
        le.plot_records([], str(tmp_path / "x.png"))
    with pytest.raises(click.ClickException, match="cannot write"):
        le.export_records(scenario, "csv", str(tmp_path / "no" / "such" / "dir.csv"))
    with pytest.raises(click.ClickException, match="malformed"):
        le.export_records([{"seq": 1}], "json", str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x")


def test_plot_writes_a_png_timeline_SR_LOG_4(scenario, tmp_path):
    out = tmp_path / "timeline.png"
    assert le.plot_records(scenario, str(out)) == len(scenario)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20000           # three panels with lines and labels, not a blank
    # one record, no therapy, no alarm: still a plot
    le.plot_records([_rec(1, events.POWER_ON)], str(tmp_path / "one.png"))
    assert (tmp_path / "one.png").stat().st_size > 5000


@pytest.fixture
def fake_logfile(monkeypatch, scenario):
    """host_tools.pumpctl.logfile.read_records stand-in (the real one is another issue's
    work): returns the scenario for any path."""
    mod = types.ModuleType("host_tools.pumpctl.logfile")

    class LogFileError(Exception):
        pass

    def read_records(path):
        if path.endswith("bad.log"):
            raise LogFileError("not a pulled log")
        return [] if path.endswith("empty.log") else list(scenario)
    mod.LogFileError = LogFileError
    mod.read_records = read_records
    monkeypatch.setitem(sys.modules, "host_tools.pumpctl.logfile", mod)
    import host_tools.pumpctl as pumpctl_pkg   # `from pkg import mod` reads the attribute
    monkeypatch.setattr(pumpctl_pkg, "logfile", mod, raising=False)


def test_click_commands_export_plot_and_fail_non_zero(fake_logfile, tmp_path):
    log = tmp_path / "pump.log"
    log.write_bytes(b"x")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    runner = CliRunner()
    out = tmp_path / "out.json"
    lib = os.path.join(os.path.dirname(__file__), "fixtures", "library_small.json")
    r = runner.invoke(le.logs_export_cmd, [str(log), "--format", "fhir", "--out", str(out),
                                           "--serial", "VP-7", "--library", lib])
    assert r.exit_code == 0, r.output
    assert "exported" in r.output and out.exists()
    r = runner.invoke(le.logs_export_cmd, [str(log), "--format", "xml", "--out", str(out)])
    assert r.exit_code != 0 and "xml" in r.output
    r = runner.invoke(le.logs_export_cmd, [str(empty), "--format", "csv", "--out", str(out)])
    assert r.exit_code == 1 and "empty" in r.output
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"?")
    r = runner.invoke(le.logs_export_cmd, [str(bad), "--format", "csv", "--out", str(out)])
    assert r.exit_code == 1 and "not a pulled log" in r.output
    png = tmp_path / "t.png"
    r = runner.invoke(le.logs_plot_cmd, [str(log), "--out", str(png)])
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 20000
    r = runner.invoke(le.logs_plot_cmd, [str(log), "--out", str(tmp_path / "no" / "t.png")])
    assert r.exit_code == 1 and "cannot write" in r.output


def test_codes_outside_their_value_set_are_refused():
    records = [_rec(1, events.POWER_ON), _rec(2, events.THERAPY_PROGRAMMED, 1000, 1000)]
    bundle = le.build_fhir_bundle(le.decode_records(records), "VP-1")
    le.check_codes(bundle)
    bundle.entry[1].resource.status = "paused"      # not a MedicationAdministration status
    with pytest.raises(le.ExportError, match="MedicationAdministration.status 'paused'"):
        le.check_codes(bundle)


def test_fhir_export_of_a_library_scenario_names_the_drug_SR_LOG_4(tmp_path):
    """Vancomycin 550 mg/h at 5 mg/mL (above the soft max 500 mg/h, confirmed) from the
    test library (id 42 v3): the administration names the drug, the override's LOW alarm
    is a low-severity DetectedIssue implicating it."""
    from fhir.resources.R4B.bundle import Bundle
    app, world, hal = library_pump.make_pump()
    plan = app.program_from_library("Adult home", 101, 0, 550000, "mg/h", 100000,
                                    confirm_soft=True)
    app.start()
    library_pump.run_for(app, world, 60)
    records = _records_of(app)
    assert events.SOFT_LIMIT_OVERRIDE in _types(records)
    out = tmp_path / "lib.json"
    le.export_records(records, "fhir", str(out), pump_serial="VP-3", library=app.library)
    bundle = Bundle.model_validate_json(out.read_text())
    admin = [e for e in bundle.entry
             if e.resource.get_resource_type() == "MedicationAdministration"][0]
    med = admin.resource.medicationCodeableConcept
    assert med.text == "Vancomycin" and med.coding[0].code == "101"
    assert med.coding[0].system.endswith(":42:3")
    assert admin.resource.status == "in-progress" and admin.resource.effectivePeriod.end is None
    assert admin.resource.dosage.rateQuantity.value == plan.rate_ul_per_h / 1000.0
    issue = [e.resource for e in bundle.entry
             if e.resource.get_resource_type() == "DetectedIssue"][0]
    assert issue.code.coding[0].display == "SOFT LIMIT OVERRIDE" and issue.severity == "low"
    assert issue.implicated[0].reference == admin.fullUrl
    rows = json.loads(_export_text(records, "json"))["records"]
    soft = [r for r in rows if r["event"] == "SOFT_LIMIT_OVERRIDE"][0]
    assert soft["drug_id"] == 101 and soft["dose"] == "550" and soft["dose_unit"] == "mg/h"


def test_library_source_names_drugs_of_that_library_only(tmp_path):
    names = le.LibraryNames.from_source(os.path.join(os.path.dirname(__file__), "fixtures",
                                                     "library_small.json"))
    assert names.library_id == 42 and names.drug_name(101) == "Vancomycin"
    assert le._drug_name(names, 101, 42, 3) == "Vancomycin"
    assert le._drug_name(names, 101, 43, 3) is None          # another library's drug 101
    assert le._drug_name(names, 101, 42, 4) is None          # another version
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(le.ExportError, match="drug library"):
        le.LibraryNames.from_source(str(bad))


def test_export_command_reads_a_real_pulled_log_file(tmp_path):
    """Integration with host_tools.pumpctl.logfile (skipped where it does not exist yet)."""
    logfile = pytest.importorskip("host_tools.pumpctl.logfile")
    if not hasattr(logfile, "write_file"):
        pytest.skip("host_tools.pumpctl.logfile has no write_file")
    app, world, hal = make_pump()
    app.program_continuous(30000, 500)
    app.start()
    run_for(app, world, 90)
    path = tmp_path / "pulled.log"
    logfile.write_file(str(path), app.log.read(1, 100000))
    out = tmp_path / "out.fhir.json"
    r = CliRunner().invoke(le.logs_export_cmd, [str(path), "--format", "fhir",
                                                "--out", str(out)])
    assert r.exit_code == 0, r.output
    from fhir.resources.R4B.bundle import Bundle
    bundle = Bundle.model_validate_json(out.read_text())
    statuses = [e.resource.status for e in bundle.entry
                if e.resource.get_resource_type() == "MedicationAdministration"]
    assert statuses == ["completed"]
