"""Event-log export and timeline plot (SR-LOG-4): CSV, JSON, a FHIR R4 Bundle, a PNG.

Owns the host-side meaning of a pulled log: each record's arguments a/b decoded into
named fields with units (``decode_record``), the log grouped into therapy episodes and
alarm intervals (``episodes``, ``alarm_intervals``), and the four outputs built from
them.  Input is a list of record dicts ``dict(seq, type, type_name, rtc_s, mono_ms, a, b,
link)`` as ``host_tools.pumpctl.logfile.read_records`` returns them; this module never
reads a pump or a log file itself (the click commands below do, through ``read_records``)
and never verifies the log (``logs verify`` and ``logs pull`` do).  The FHIR bundle is
built and validated with the ``fhir.resources`` R4B models, never as hand-built dicts;
the mapping and its limits are in docs/FHIR_MAPPING.md.
"""
import csv
import datetime
import io
import json
import os
import uuid

import click

import safety_core as sc
from firmware import alarms as al
from firmware import druglib, events, programming, protocol
from firmware import library_store
from firmware.service import FIRMWARE_VERSION, MODEL

FORMATS = ("csv", "json", "fhir")
UCUM = "http://unitsofmeasure.org"
# local code systems (no standard vocabulary holds these pump-specific codes)
SYSTEM_BASE = "urn:infusion-pump:amb-pump-1"
ALARM_SYSTEM = SYSTEM_BASE + ":alarm-id"
EVENT_SYSTEM = SYSTEM_BASE + ":event-seq"
DRUG_SYSTEM = SYSTEM_BASE + ":drug-library"
_NS = uuid.UUID("6f1c1d2e-5a0b-4c59-9d1e-2b1f0c8a7e31")   # uuid5 namespace: stable ids

_LIB_REASONS = dict((v, k[2:]) for k, v in vars(library_store).items()
                    if k.startswith("R_") and isinstance(v, int))
_COMMAND_NAMES = dict((v, k) for k, v in vars(protocol).items()
                      if k.isupper() and isinstance(v, int) and 0 < v < 0x7F
                      and k not in ("VERSION", "MAX_BODY", "HEADER", "TRAILER",
                                    "LIBRARY_BEGIN") and not k.startswith("E_"))
_ERROR_BITS = ((1, "SERVICE"), (2, "DISPLAY"), (4, "SYSTEM"))   # firmware/app.py ERR_*
_KEYS_WHICH = {1: "technician", 2: "fleet", 3: "technician+fleet"}
_KEYS_HOW = {1: "on-pump confirmation", 2: "logged-in key change"}
_LOGOUT_WHY = {0: "logout", 1: "idle timeout", 2: "new login"}
_SOFT_SIDE = {programming.SOFT_BELOW_MIN: "below soft min",
              programming.SOFT_ABOVE_MAX: "above soft max"}
# IEC 60601-1-8 alarm priority -> FHIR DetectedIssue.severity
_SEVERITY = {al.PRIORITY_HIGH: "high", al.PRIORITY_MEDIUM: "moderate", al.PRIORITY_LOW: "low"}


class ExportError(Exception):
    """A log that cannot be exported; the message says why."""


def _u32(v):
    return v & 0xFFFFFFFF


def iso_utc(rtc_s):
    """FHIR dateTime / instant text (UTC, seconds) of a Unix time."""
    return datetime.datetime.fromtimestamp(rtc_s, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _bits(value, table):
    return "|".join(n for bit, n in table if value & bit)


def _alarm_fields(alarm_id):
    return {"alarm_id": alarm_id, "alarm_name": al.name(alarm_id)}


def _result_fields(code):
    """``result_code`` and ``result``: 0 done, else the protocol error's name (E_*)."""
    return {"result_code": code,
            "result": "done" if code == 0 else protocol.ERROR_NAMES.get(code, "ERROR_%d" % code)}


def _decode_args(etype, a, b):
    """Named fields (units in the names) of one record's arguments a, b."""
    E = events
    if etype in (E.SELF_TEST_PASSED, E.SELF_TEST_FAILED):
        return {"tests_run": a, "tests_failed": b}
    if etype == E.THERAPY_PROGRAMMED:
        return {"rate_ul_per_h": a, "vtbi_ul": b}
    if etype in (E.THERAPY_STARTED, E.THERAPY_PAUSED, E.THERAPY_RESUMED):
        return {"delivered_ul": a}
    if etype == E.THERAPY_STOPPED:
        return {"delivered_ul": a, "fault_bits": b, "faults": _bits(b, sc.FAULT_NAMES)}
    if etype == E.THERAPY_COMPLETED:
        return {"delivered_ul": a, "kvo_follows": bool(b)}
    if etype == E.PROGRAM_REFUSED:
        return {"field_id": a, "refusal_code": b}
    if etype in (E.ALARM_RAISED, getattr(E, "ALARM_ESCALATED", 34)):
        # escalated: b = the priority of the pattern it now sounds
        d = _alarm_fields(a)
        d["alarm_priority"] = al.PRIORITY_NAMES[b] if 0 <= b < len(al.PRIORITY_NAMES) \
            else str(b)
        return d
    if etype == E.ALARM_ACKNOWLEDGED:
        d = _alarm_fields(a)
        d["superseded"] = b == 1      # cleared because a new program replaced its subject
        return d
    if etype in (E.ALARM_SILENCED, E.ALARM_CLEARED):
        return _alarm_fields(a)
    if etype == E.LIBRARY_LOADED:
        return {"library_id": _u32(a), "library_version": _u32(b)}
    if etype == E.LIBRARY_REJECTED:
        return {"reason_code": a, "reason": _LIB_REASONS.get(a, "REASON_%d" % a),
                "library_id": _u32(b)}
    if etype == E.SERVICE_LOGIN:
        d = {"login_ok": a == 1}
        d["login_counter" if a == 1 else "failures_in_a_row"] = b
        return d
    if etype == E.SERVICE_COMMAND:
        d = {"command_code": a, "command": _COMMAND_NAMES.get(a, "COMMAND_0x%02x" % a)}
        d.update(_result_fields(b))
        return d
    if etype == E.CLOCK_SET:
        return {"old_rtc_s": _u32(a), "new_rtc_s": _u32(b)}
    if etype == E.ERROR:
        return {"error_bits": a, "errors": _bits(a, _ERROR_BITS)}
    if etype == E.KEYS_CHANGED:
        return {"keys": _KEYS_WHICH.get(a, str(a)), "keys_how": _KEYS_HOW.get(b, str(b))}
    if etype == E.SERVICE_LOGOUT:
        return {"logout_reason": _LOGOUT_WHY.get(a, str(a)), "writes": b}
    if etype == E.THERAPY_CONTEXT:
        return {"library_id": _u32(a), "library_version": _u32(b) >> 16,
                "drug_id": _u32(b) & 0xFFFF}
    if etype == E.SOFT_LIMIT_OVERRIDE:
        unit_code = (_u32(a) >> 16) & 0xFF
        unit = druglib.DOSE_UNITS[unit_code] if 0 < unit_code < len(druglib.DOSE_UNITS) \
            else None
        d = {"drug_id": _u32(a) & 0xFFFF, "soft_side": _SOFT_SIDE.get(_u32(a) >> 24, "?"),
             "dose_unit": unit[0] if unit else "unit %d" % unit_code, "dose_scaled": b}
        if unit:
            d["dose"] = druglib.format_scaled(b, unit[1])
        return d
    if etype == getattr(E, "LOG_SEGMENT_RECYCLED", 90):
        return {"first_kept_seq": _u32(a), "segment_index": b}
    if etype == getattr(E, "SERVICE_FRAME_REJECTED", 100):
        # rate-limited error replies (firmware/service.py, docs/SERVICE_LINK.md section 9)
        err, cmd = _u32(a) & 0xFF, (_u32(a) >> 8) & 0xFF
        d = {"command_code": cmd, "command": _COMMAND_NAMES.get(cmd, "COMMAND_0x%02x" % cmd)
             if cmd else "UNDECODED"}           # command 0: the frame could not be decoded
        d.update(_result_fields(err))
        d["frames"] = b
        return d
    if etype == getattr(E, "SERVICE_REJECTS_ENDED", 101):
        d = _result_fields(a)
        d["frames"] = b
        return d
    if etype == getattr(E, "SERVICE_LOCKOUT", 102):
        return {"lockout_s": a, "failures_in_a_row": b}
    if etype == E.LIBRARY_CHECK_REFUSED:
        return {"reason_code": a, "reason": programming.REASON_NAMES[a]
                if 0 < a < len(programming.REASON_NAMES) else "REASON_%d" % a,
                "drug_id": b}
    return {}


# every decoded column, for a CSV header that does not depend on the log's content
DECODED_COLUMNS = [
    "rate_ul_per_h", "vtbi_ul", "delivered_ul", "fault_bits", "faults", "kvo_follows",
    "alarm_id", "alarm_name", "alarm_priority", "superseded", "tests_run", "tests_failed",
    "field_id", "refusal_code", "library_id", "library_version", "drug_id", "reason_code",
    "reason", "login_ok", "login_counter", "failures_in_a_row", "command_code", "command",
    "result_code", "result", "old_rtc_s", "new_rtc_s", "error_bits", "errors", "keys",
    "keys_how", "logout_reason", "writes", "soft_side", "dose_unit", "dose_scaled", "dose",
    "first_kept_seq", "segment_index", "frames", "lockout_s",
]
BASE_COLUMNS = ["seq", "event", "type", "rtc_utc", "rtc_s", "mono_ms", "a", "b", "link"]
CSV_COLUMNS = BASE_COLUMNS + DECODED_COLUMNS


def decode_record(rec):
    """One record dict -> an ordered dict of base fields then the decoded fields."""
    try:
        etype = int(rec["type"])
        out = {"seq": int(rec["seq"]),
               "event": rec.get("type_name") or events.name(etype),
               "type": etype,
               "rtc_utc": iso_utc(int(rec["rtc_s"])),
               "rtc_s": int(rec["rtc_s"]),
               "mono_ms": int(rec["mono_ms"]),
               "a": int(rec["a"]), "b": int(rec["b"])}
    except (KeyError, TypeError, ValueError) as e:
        raise ExportError("record %r is malformed: %s" % (rec.get("seq", "?")
                                                         if isinstance(rec, dict) else rec, e))
    link = rec.get("link")
    if isinstance(link, (bytes, bytearray)):
        link = link.hex()
    out["link"] = link
    out.update(_decode_args(etype, out["a"], out["b"]))
    return out


def decode_records(records):
    if not records:
        raise ExportError("the log is empty: nothing to export")
    return [decode_record(r) for r in records]


# ---- therapy episodes and alarm intervals ------------------------------------------------

def episodes(decoded):
    """Therapy episodes, one per THERAPY_PROGRAMMED, each a dict: programmed (record),
    context (THERAPY_CONTEXT record or None), rate_ul_per_h, vtbi_ul, start_s, end_s,
    delivered_ul, status (FHIR MedicationAdministration.status), faults, events."""
    out = []
    ep = None
    context = None
    prev = None

    def close(status, end_s):
        if ep is not None and ep["open"]:
            ep["open"] = False
            if ep["status"] in ("in-progress", "on-hold"):
                ep["status"] = status
            if ep["end_s"] is None and ep["start_s"] is not None:
                ep["end_s"] = end_s

    for r in decoded:
        t = r["type"]
        if t == events.THERAPY_CONTEXT:
            context = r
        elif t == events.THERAPY_PROGRAMMED:
            close("stopped", r["rtc_s"])
            ctx = context if prev is not None and prev is context else None
            ep = {"programmed": r, "context": ctx, "rate_ul_per_h": r["rate_ul_per_h"],
                  "vtbi_ul": r["vtbi_ul"], "start_s": None, "end_s": None,
                  "delivered_ul": 0, "status": "not-done", "faults": "", "events": [r],
                  "open": True, "kvo": False}
            out.append(ep)
            context = None
        elif t == events.POWER_ON:
            # a restart loses the loaded program: the episode ends at the last record
            close("stopped", prev["rtc_s"] if prev is not None else r["rtc_s"])
            ep = None
        elif ep is not None and ep["open"] and t in (
                events.THERAPY_STARTED, events.THERAPY_RESUMED, events.THERAPY_PAUSED,
                events.THERAPY_STOPPED, events.THERAPY_COMPLETED):
            ep["events"].append(r)
            ep["delivered_ul"] = max(ep["delivered_ul"], r["delivered_ul"])
            if ep["status"] == "completed":
                pass        # KVO after the VTBI: pauses and resumes keep it completed
            elif t in (events.THERAPY_STARTED, events.THERAPY_RESUMED):
                if ep["start_s"] is None:
                    ep["start_s"] = r["rtc_s"]
                ep["status"] = "in-progress"
                ep["end_s"] = None
            elif t == events.THERAPY_PAUSED:
                ep["status"] = "on-hold"
                ep["end_s"] = r["rtc_s"]
            elif t == events.THERAPY_STOPPED:
                ep["status"] = "stopped"
                ep["faults"] = r["faults"]
                ep["end_s"] = r["rtc_s"]
            else:
                ep["status"] = "completed"
                ep["kvo"] = r["kvo_follows"]
                ep["end_s"] = r["rtc_s"]
        prev = r
    for e in out:
        del e["open"]
    return out


def alarm_intervals(decoded):
    """Alarms, one dict per ALARM_RAISED: alarm_id, name, priority (1..3), raised
    (record), acknowledged_s, silenced_s, cleared_s (None while not seen)."""
    out = []
    active = {}
    for r in decoded:
        t = r["type"]
        if t == events.ALARM_RAISED:
            prio = r["b"] if r["b"] in _SEVERITY else al.priority(r["a"])
            iv = {"alarm_id": r["a"], "name": r["alarm_name"], "priority": prio, "raised": r,
                  "acknowledged_s": None, "silenced_s": None, "cleared_s": None,
                  "superseded": False}
            out.append(iv)
            active[r["a"]] = iv
        elif t in (events.ALARM_ACKNOWLEDGED, events.ALARM_SILENCED,
                   events.ALARM_CLEARED) and r["a"] in active:
            iv = active[r["a"]]
            if t == events.ALARM_ACKNOWLEDGED:
                iv["acknowledged_s"] = r["rtc_s"]
                iv["superseded"] = r["superseded"]
            elif t == events.ALARM_SILENCED:
                iv["silenced_s"] = r["rtc_s"]
            else:
                iv["cleared_s"] = r["rtc_s"]
                del active[r["a"]]
        elif t == events.POWER_ON:
            active = {}          # a restart clears every alarm (the firmware starts empty)
    return out


# ---- CSV and JSON --------------------------------------------------------------------------

def to_csv(decoded):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in decoded:
        w.writerow(dict((k, ("true" if v else "false") if isinstance(v, bool) else
                         ("" if v is None else v)) for k, v in r.items()))
    return buf.getvalue()


def to_json(decoded, pump_serial):
    doc = {"format": "infusion-pump-event-log", "format_version": 1,
           "pump_serial": pump_serial, "model": MODEL, "record_count": len(decoded),
           "first_seq": decoded[0]["seq"], "last_seq": decoded[-1]["seq"],
           "records": decoded}
    return json.dumps(doc, indent=2) + "\n"


# ---- FHIR ----------------------------------------------------------------------------------

class LibraryNames:
    """Drug names of one library (id, version) from its source file (CSV or JSON, as the
    pharmacist edits it: ``host_tools.library.source``)."""

    def __init__(self, library_id, version, names):
        self.library_id = library_id
        self.version = version
        self.names = names

    def drug_name(self, drug_id):
        return self.names.get(drug_id)

    @classmethod
    def from_source(cls, path):
        from host_tools.library import source
        src = source.load(path)
        errors = [p for p in src.problems if getattr(p, "severity", "error") == "error"]
        if src.doc is None or errors:
            raise ExportError("drug library %s: %s" % (
                path, "; ".join(str(p) for p in (errors or src.problems)[:3])))
        model = source.build_model(src)
        names = {}
        for area in model["care_areas"]:
            for entry in area["entries"]:
                if entry.get("drug_id") and entry.get("drug_name"):
                    names[entry["drug_id"]] = entry["drug_name"]
        lib = model["library"] or {}
        return cls(lib.get("library_id"), lib.get("version"), names)


def _drug_name(library, drug_id, library_id=None, version=None):
    """The drug's name from ``library`` (a druglib.Library, LibraryNames or a {drug_id:
    name} map), or None; None too when the library is not the one the program came from."""
    if library is None or not drug_id:
        return None
    lib_id = getattr(library, "library_id", None)
    lib_version = getattr(library, "version", None)
    if library_id is not None and lib_id is not None and lib_id != library_id:
        return None
    if version is not None and lib_version is not None and lib_version & 0xFFFF != version:
        return None
    if hasattr(library, "drug_name"):
        return library.drug_name(drug_id)
    if hasattr(library, "get"):
        return library.get(drug_id)
    return None


def _urn(*parts):
    return "urn:uuid:%s" % uuid.uuid5(_NS, ":".join(str(p) for p in parts))


def build_fhir_bundle(decoded, pump_serial, library=None, firmware_version=FIRMWARE_VERSION,
                      model=MODEL):
    """The FHIR R4 (R4B models) Bundle of a decoded log: a Device, one
    MedicationAdministration per therapy episode, one DetectedIssue per alarm."""
    from fhir.resources.R4B.bundle import Bundle, BundleEntry
    from fhir.resources.R4B.codeableconcept import CodeableConcept
    from fhir.resources.R4B.coding import Coding
    from fhir.resources.R4B.detectedissue import DetectedIssue
    from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceVersion
    from fhir.resources.R4B.identifier import Identifier
    from fhir.resources.R4B.annotation import Annotation
    from fhir.resources.R4B.medicationadministration import (
        MedicationAdministration, MedicationAdministrationDosage)
    from fhir.resources.R4B.period import Period
    from fhir.resources.R4B.quantity import Quantity
    from fhir.resources.R4B.reference import Reference

    serial_system = SYSTEM_BASE + ":serial"
    device_url = _urn("device", pump_serial)
    device = Device(
        identifier=[Identifier(system=serial_system, value=pump_serial)],
        status="active", serialNumber=pump_serial, modelNumber=model,
        deviceName=[DeviceDeviceName(name=model, type="model-name")],
        type=CodeableConcept(text="Ambulatory infusion pump"),
        version=[DeviceVersion(type=CodeableConcept(text="firmware"),
                               value=firmware_version)],
        note=[Annotation(text="Event log seq %d..%d exported by pumpctl" % (
            decoded[0]["seq"], decoded[-1]["seq"]))])
    entries = [BundleEntry(fullUrl=device_url, resource=device)]
    patient = Reference(display="Patient using pump %s (not recorded on the pump)"
                        % pump_serial)
    device_ref = Reference(reference=device_url, display="%s %s" % (model, pump_serial))

    admin_urls = []      # (start_s, end_s, url) to link alarms to the therapy running
    for ep in episodes(decoded):
        prog = ep["programmed"]
        ctx = ep["context"]
        url = _urn("administration", pump_serial, prog["seq"])
        if ctx is None:
            medication = CodeableConcept(text="Basic infusion (no drug library)")
        else:
            name = _drug_name(library, ctx["drug_id"], ctx["library_id"],
                              ctx["library_version"])
            if ctx["drug_id"] == 0:
                name = "Basic infusion (drug library %d v%d)" % (ctx["library_id"],
                                                                 ctx["library_version"])
            medication = CodeableConcept(
                coding=[Coding(system="%s:%d:%d" % (DRUG_SYSTEM, ctx["library_id"],
                                                    ctx["library_version"]),
                               code=str(ctx["drug_id"]), display=name)],
                text=name or "drug %d of library %d v%d" % (
                    ctx["drug_id"], ctx["library_id"], ctx["library_version"]))
        dosage = MedicationAdministrationDosage(
            text="%.1f mL/h, VTBI %.1f mL" % (ep["rate_ul_per_h"] / 1000.0,
                                             ep["vtbi_ul"] / 1000.0),
            route=CodeableConcept(text="Intravenous"),
            rateQuantity=Quantity(value=_ml(ep["rate_ul_per_h"]), unit="mL/h",
                                  system=UCUM, code="mL/h"),
            dose=Quantity(value=_ml(ep["delivered_ul"]), unit="mL", system=UCUM,
                          code="mL"))
        kw = {}
        start_s = ep["start_s"]
        if start_s is not None:
            kw["effectivePeriod"] = Period(
                start=iso_utc(start_s),
                end=iso_utc(ep["end_s"]) if ep["end_s"] is not None else None)
        else:
            kw["effectiveDateTime"] = prog["rtc_utc"]
        if ep["status"] == "stopped" and ep["faults"]:
            kw["statusReason"] = [CodeableConcept(text="stopped by fault: " + ep["faults"])]
        elif ep["status"] == "not-done":
            kw["statusReason"] = [CodeableConcept(text="programmed, never started")]
        notes = ["VTBI %.3f mL; delivered %.3f mL%s; log records %s" % (
            ep["vtbi_ul"] / 1000.0, ep["delivered_ul"] / 1000.0,
            ", then KVO" if ep["kvo"] else "",
            ", ".join("%d %s" % (e["seq"], e["event"]) for e in ep["events"]))]
        admin = MedicationAdministration(
            identifier=[Identifier(system=EVENT_SYSTEM + ":" + pump_serial,
                                   value=str(prog["seq"]))],
            status=ep["status"], medicationCodeableConcept=medication, subject=patient,
            device=[device_ref], dosage=dosage,
            note=[Annotation(text=n) for n in notes], **kw)
        entries.append(BundleEntry(fullUrl=url, resource=admin))
        admin_urls.append((prog["rtc_s"], ep["end_s"], url))

    for iv in alarm_intervals(decoded):
        raised = iv["raised"]
        detail = ["raised %s (seq %d)" % (raised["rtc_utc"], raised["seq"])]
        for key, what in (("acknowledged_s", "acknowledged"), ("silenced_s", "silenced"),
                          ("cleared_s", "cleared")):
            if iv[key] is not None:
                detail.append("%s %s" % (what, iso_utc(iv[key])))
        if iv["superseded"]:
            detail.append("superseded by a new program")
        if iv["cleared_s"] is None:
            detail.append("not cleared in this log")
        implicated = [Reference(reference=url) for lo, hi, url in admin_urls
                      if lo <= raised["rtc_s"] and (hi is None or raised["rtc_s"] <= hi)]
        issue = DetectedIssue(
            identifier=[Identifier(system=EVENT_SYSTEM + ":" + pump_serial,
                                   value=str(raised["seq"]))],
            status="final",
            code=CodeableConcept(
                coding=[Coding(system=ALARM_SYSTEM, code=str(iv["alarm_id"]),
                               display=iv["name"])],
                text="%s alarm: %s" % (al.PRIORITY_NAMES[iv["priority"]], iv["name"])),
            severity=_SEVERITY[iv["priority"]],
            identifiedPeriod=Period(
                start=raised["rtc_utc"],
                end=iso_utc(iv["cleared_s"]) if iv["cleared_s"] is not None else None),
            author=device_ref, implicated=implicated[-1:] or None,
            detail="; ".join(detail))
        entries.append(BundleEntry(fullUrl=_urn("alarm", pump_serial, raised["seq"]),
                                   resource=issue))

    last = decoded[-1]
    return Bundle(
        identifier=Identifier(system=EVENT_SYSTEM + ":" + pump_serial,
                              value="%d-%d" % (decoded[0]["seq"], last["seq"])),
        type="collection", timestamp=last["rtc_utc"], entry=entries)


def _ml(value_ul):
    # Decimal-exact text through float: uL are integers, so 3 decimals are exact
    return round(value_ul / 1000.0, 3)


# required-binding value sets the model library does not enforce (it checks types,
# cardinality and required elements, not code values): checked here before writing
REQUIRED_CODES = {
    ("MedicationAdministration", "status"): ("in-progress", "not-done", "on-hold",
                                             "completed", "entered-in-error", "stopped",
                                             "unknown"),
    ("DetectedIssue", "status"): ("registered", "preliminary", "final", "amended",
                                  "corrected", "cancelled", "entered-in-error", "unknown"),
    ("DetectedIssue", "severity"): ("high", "moderate", "low"),
    ("Device", "status"): ("active", "inactive", "entered-in-error", "unknown"),
    ("Bundle", "type"): ("collection",),
}


def check_codes(bundle):
    """Raise ExportError naming the resource and element of a code outside its value set."""
    resources = [bundle] + [e.resource for e in bundle.entry or ()]
    for res in resources:
        rtype = res.get_resource_type()
        for (t, element), allowed in REQUIRED_CODES.items():
            value = getattr(res, element, None) if t == rtype else None
            if value is not None and value not in allowed:
                raise ExportError("FHIR %s.%s %r is not one of %s"
                                  % (rtype, element, value, ", ".join(allowed)))


def to_fhir(decoded, pump_serial, library=None):
    bundle = build_fhir_bundle(decoded, pump_serial, library)
    check_codes(bundle)
    text = bundle.model_dump_json(indent=2, exclude_none=True)
    # validate what is written: it must parse back into an equal Bundle
    from fhir.resources.R4B.bundle import Bundle
    again = Bundle.model_validate_json(text)
    if again.model_dump_json(indent=2, exclude_none=True) != text:
        raise ExportError("FHIR bundle does not round-trip through the model library")
    return text + "\n"


# ---- public API ----------------------------------------------------------------------------

def export_records(records, fmt, out_path, pump_serial="UNSET", library=None):
    """Write ``records`` (dicts as read_records returns) to ``out_path`` as csv, json or
    fhir; returns the number of records written.  Raises click.ClickException with a
    message naming the problem (unknown format, empty or malformed log, unwritable
    output)."""
    if fmt not in FORMATS:
        raise click.ClickException("unknown export format %r: use one of %s"
                                   % (fmt, ", ".join(FORMATS)))
    try:
        decoded = decode_records(records)
        if fmt == "csv":
            text = to_csv(decoded)
        elif fmt == "json":
            text = to_json(decoded, pump_serial)
        else:
            text = to_fhir(decoded, pump_serial, library)
    except ExportError as e:
        raise click.ClickException(str(e))
    _write(out_path, text.encode("utf-8"))
    return len(decoded)


def _write(out_path, data):
    tmp = "%s.tmp" % out_path
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, out_path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise click.ClickException("cannot write %s: %s" % (out_path, e.strerror or e))


def _rate_series(decoded):
    """(t_s, rate_ul_per_h) steps: the programmed rate while running, 0 otherwise
    (KVO is drawn as 0: its rate is not in the log)."""
    pts = []
    rate = 0
    for r in decoded:
        t = r["type"]
        if t == events.THERAPY_PROGRAMMED:
            rate = r["rate_ul_per_h"]
        elif t in (events.THERAPY_STARTED, events.THERAPY_RESUMED):
            pts.append((r["rtc_s"], rate))
        elif t in (events.THERAPY_PAUSED, events.THERAPY_STOPPED, events.THERAPY_COMPLETED,
                   events.POWER_ON, events.POWER_OFF):
            pts.append((r["rtc_s"], 0))
    return pts


def plot_records(records, out_png, title=None):
    """PNG timeline: rate (mL/h), delivered volume (mL) and alarm bars by priority."""
    try:
        decoded = decode_records(records)
    except ExportError as e:
        raise click.ClickException(str(e))
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    t0 = decoded[0]["rtc_s"]
    t_end = decoded[-1]["rtc_s"]
    span_s = max(1, t_end - t0)
    scale, unit = (3600.0, "h") if span_s > 3 * 3600 else (60.0, "min")

    def x(t):
        return (t - t0) / scale

    fig = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    ax_rate, ax_vol, ax_al = fig.subplots(3, 1, sharex=True,
                                          gridspec_kw={"height_ratios": [2, 2, 1.5]})
    pts = _rate_series(decoded)
    if pts:
        xs = [x(t) for t, _ in pts] + [x(t_end)]
        ys = [v / 1000.0 for _, v in pts] + [pts[-1][1] / 1000.0]
        ax_rate.step(xs, ys, where="post", color="tab:blue")
    ax_rate.set_ylabel("rate (mL/h)")
    ax_rate.set_ylim(bottom=0)
    ax_rate.grid(True, alpha=0.3)

    vx = []
    vy = []
    for ep in episodes(decoded):      # one line, NaN between programs (one artist: fast)
        if len(ep["events"]) > 1:
            vx += [x(e["rtc_s"]) for e in ep["events"][1:]] + [float("nan")]
            vy += [e["delivered_ul"] / 1000.0 for e in ep["events"][1:]] + [float("nan")]
    if vx:
        ax_vol.plot(vx, vy, marker="o", markersize=3, color="tab:green")
    ax_vol.set_ylabel("delivered by\nthe program (mL)")
    ax_vol.set_ylim(bottom=0)
    ax_vol.grid(True, alpha=0.3)

    colours = {al.PRIORITY_HIGH: "tab:red", al.PRIORITY_MEDIUM: "tab:orange",
               al.PRIORITY_LOW: "gold"}
    ivs = alarm_intervals(decoded)
    names = []
    for iv in ivs:
        if iv["name"] not in names:
            names.append(iv["name"])
    bars = {}                          # (row, priority) -> [(left, width)]: one artist each
    min_w = span_s / scale / 200.0     # an alarm cleared at once still shows
    for iv in ivs:
        lo = x(iv["raised"]["rtc_s"])
        hi = x(iv["cleared_s"]) if iv["cleared_s"] is not None else x(t_end)
        bars.setdefault((names.index(iv["name"]), iv["priority"]), []).append(
            (lo, max(hi - lo, min_w)))
    for (row, prio), spans in bars.items():
        ax_al.broken_barh(spans, (row - 0.3, 0.6), color=colours.get(prio, "tab:red"))
    if not names:
        ax_al.text(0.5, 0.5, "no alarms", transform=ax_al.transAxes, ha="center",
                   va="center", color="grey")
    ax_al.set_yticks(range(len(names)))
    ax_al.set_yticklabels(names, fontsize=7)
    ax_al.set_ylim(-0.7, max(1, len(names)) - 0.3)
    from matplotlib.patches import Patch
    ax_al.legend(handles=[Patch(color=colours[p], label=al.PRIORITY_NAMES[p])
                          for p in (al.PRIORITY_HIGH, al.PRIORITY_MEDIUM, al.PRIORITY_LOW)],
                 loc="upper left", fontsize=7, ncol=3)
    ax_al.set_ylabel("alarms")
    ax_al.set_xlabel("time since %s (%s)" % (decoded[0]["rtc_utc"], unit))
    ax_al.grid(True, axis="x", alpha=0.3)
    fig.suptitle(title or "Pump event log seq %d..%d" % (decoded[0]["seq"],
                                                        decoded[-1]["seq"]))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _write(out_png, buf.getvalue())
    return len(decoded)


# ---- click commands (registered in the `logs` group by host_tools/pumpctl/cli.py) ----------

def _read(file_path):
    try:
        from host_tools.pumpctl import logfile
    except ImportError as e:
        raise click.ClickException("cannot read log files: %s" % e)
    file_error = getattr(logfile, "LogFileError", OSError)
    try:
        return logfile.read_records(file_path)
    except click.ClickException:
        raise
    except (file_error, OSError, ValueError) as e:
        raise click.ClickException("cannot read %s: %s" % (file_path, e))


@click.command("export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
              help="csv, json or fhir (a FHIR R4 Bundle)")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--serial", "pump_serial", default="UNSET", show_default=True,
              help="the pump's serial number (FHIR Device, JSON header)")
@click.option("--library", "library_path", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="drug-library source (CSV/JSON) naming the drugs in the FHIR export")
def logs_export_cmd(file, fmt, out_path, pump_serial, library_path):
    """Export a pulled log FILE to CSV, JSON or a FHIR R4 Bundle."""
    library = None
    if library_path:
        try:
            library = LibraryNames.from_source(library_path)
        except ExportError as e:
            raise click.ClickException(str(e))
    n = export_records(_read(file), fmt, out_path, pump_serial=pump_serial,
                       library=library)
    click.echo("exported %d records to %s (%s)" % (n, out_path, fmt))


@click.command("plot")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_png", required=True, type=click.Path(dir_okay=False))
def logs_plot_cmd(file, out_png):
    """Plot a pulled log FILE: rate, delivered volume and alarms over time (PNG)."""
    n = plot_records(_read(file), out_png)
    click.echo("plotted %d records to %s" % (n, out_png))
