"""The pharmacist's drug-library source (SR-LIB-1): CSV or JSON in, one checked model out.

Owns the source formats and their mapping onto the published JSON Schema
(``docs/drug_library.schema.json``): a CSV file (one row per care area x drug x
concentration, plus one ``basic`` row per care area) is turned into the same
document a JSON source holds, so one schema validates both; schema errors are
reported with the CSV row (spreadsheet numbering: the header is row 1) or the
JSON path and the field.  Numbers are read as exact ``Decimal`` (JSON floats
included) and never pass through binary floating point.  Also writes a model
back out as CSV or JSON (``to_csv``, ``to_json``).

The model (``build_model``) is plain data shared by check, compiler, show and
diff::

    {"library": {"library_id", "version", "name", "model"},   # None when not given
     "care_areas": [{"name", "basic_allowed", "entries": [entry, ...]}]}

where every entry has all ``ENTRY_FIELDS`` (None when not set) and the care
area's basic (no-drug) infusion, when allowed, is an entry with drug_id 0.
Keys starting with ``_`` (source location, fields that failed the schema) are
bookkeeping, not library content.
"""
import csv
import difflib
import io
import json
import os
import re
from decimal import Decimal

from jsonschema import Draft202012Validator

from firmware import druglib as dl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_PATH = os.path.join(REPO, "docs", "drug_library.schema.json")

DEC, INT, STR, BOOL = "decimal", "integer", "text", "yes/no"
ENTRY_FIELDS = (
    "drug_id", "drug_name", "conc_amount", "conc_unit", "conc_volume_ml", "dose_unit",
    "default", "soft_min", "soft_max", "hard_min", "hard_max",
    "vtbi_min_ml", "vtbi_max_ml", "weight_min_kg", "weight_max_kg",
    "occlusion_mmhg", "air_limit_ul",
    "pca_max_bolus", "pca_min_lockout_minutes", "pca_max_boluses_per_h",
    "pca_max_dose_1h", "pca_max_dose_4h",
)
FIELD_KIND = {
    "drug_id": INT, "drug_name": STR, "conc_amount": DEC, "conc_unit": STR,
    "conc_volume_ml": DEC, "dose_unit": STR, "default": DEC, "soft_min": DEC, "soft_max": DEC,
    "hard_min": DEC, "hard_max": DEC, "vtbi_min_ml": DEC, "vtbi_max_ml": DEC,
    "weight_min_kg": DEC, "weight_max_kg": DEC, "occlusion_mmhg": INT, "air_limit_ul": INT,
    "pca_max_bolus": DEC, "pca_min_lockout_minutes": INT, "pca_max_boluses_per_h": INT,
    "pca_max_dose_1h": DEC, "pca_max_dose_4h": DEC, "basic_allowed": BOOL,
    "care_area": STR,
}
DOSE_FIELDS = ("default", "soft_min", "soft_max", "hard_min", "hard_max")
PCA_FIELDS = ("pca_max_bolus", "pca_min_lockout_minutes", "pca_max_boluses_per_h",
              "pca_max_dose_1h", "pca_max_dose_4h")
BASIC_FIELDS = ("dose_unit", "default", "soft_min", "soft_max", "hard_min", "hard_max",
                "vtbi_min_ml", "vtbi_max_ml", "occlusion_mmhg", "air_limit_ul")
CSV_COLUMNS = ("care_area",) + ENTRY_FIELDS + ("basic_allowed",)
REQUIRED_COLUMNS = ("care_area", "drug_id", "drug_name", "dose_unit", "hard_max")
META_FIELDS = ("library_id", "version", "name", "model")
BASIC_ROW = "basic"                  # drug_id of a care area's basic-infusion row in CSV
TRUE_WORDS = ("yes", "y", "true", "1")
FALSE_WORDS = ("no", "n", "false", "0")
# unit of fields whose unit is fixed by their name (dose fields take the entry's unit)
FIELD_UNITS = {"conc_volume_ml": "mL", "vtbi_min_ml": "mL", "vtbi_max_ml": "mL",
               "weight_min_kg": "kg", "weight_max_kg": "kg", "occlusion_mmhg": "mmHg",
               "air_limit_ul": "uL", "pca_min_lockout_minutes": "min",
               "pca_max_boluses_per_h": "per hour"}


class Problem:
    """One finding: where (row N / JSON path / library), field, message, severity."""

    def __init__(self, where, field, message, severity="error"):
        self.where = where
        self.field = field
        self.message = message
        self.severity = severity

    def __str__(self):
        head = self.where + (", " + self.field if self.field else "")
        return "%s: %s" % (head, self.message)

    def __repr__(self):
        return "Problem(%r)" % str(self)


class Source:
    """A source file as read: the schema-shaped document, locations and problems so far."""

    def __init__(self, name, kind, doc, problems, locations):
        self.name = name
        self.kind = kind
        self.doc = doc
        self.problems = problems
        self.locations = locations
        self.bad = set()            # JSON paths (tuples) whose value failed the schema

    def where(self, path):
        """(location text, field) for a JSON path into the document."""
        path = tuple(path)
        for k in range(len(path), -1, -1):
            loc = self.locations.get(path[:k])
            if loc is not None:
                rest = path[k:]
                field = rest[0] if rest and isinstance(rest[0], str) else None
                return loc, field
        return self.name, None


def schema():
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def _inline(node, defs):
    """The schema with every local ``#/$defs/...`` reference replaced by its definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
            return _inline(defs[ref[len("#/$defs/"):]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


_VALIDATOR = []


def _validator():
    """Validator of the published schema; references inlined once (same rules, 3x faster)."""
    if not _VALIDATOR:
        published = schema()
        Draft202012Validator.check_schema(published)
        _VALIDATOR.append(Draft202012Validator(_inline(published, published.get("$defs", {}))))
    return _VALIDATOR[0]


# ---- reading ------------------------------------------------------------------------------

def _reject_constant(name):
    raise ValueError("%s is not a number a library can hold" % name)


def load(path, overrides=None):
    """Read and schema-validate a source file (.csv or .json); see ``loads``."""
    kind = "json" if path.lower().endswith(".json") else "csv"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        src = Source(path, kind, None, [], {})
        src.problems.append(Problem(path, None, "cannot read: %s" % e.strerror))
        return src
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        src = Source(path, kind, None, [], {})
        src.problems.append(Problem(path, None, "not UTF-8 text (byte %d): save the file as "
                                    "UTF-8" % e.start))
        return src
    return loads(text, kind, os.path.basename(path), overrides)


def loads(text, kind, name="source", overrides=None):
    """Source from text; ``overrides`` = library identity given on the command line."""
    if kind == "json":
        src = _read_json(text, name)
    else:
        src = _read_csv(text, name)
    if src.doc is not None:
        _apply_overrides(src, overrides or {})
        _validate(src)
    return src


def _read_json(text, name):
    try:
        doc = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as e:
        where = name
        if hasattr(e, "lineno"):
            where = "%s line %d column %d" % (name, e.lineno, e.colno)
            msg = e.msg
        else:
            msg = str(e)
        return Source(name, "json", None, [Problem(where, None, "not valid JSON: %s" % msg)], {})
    locations = {(): name, ("library",): "library"}
    if isinstance(doc, dict) and isinstance(doc.get("care_areas"), list):
        for i, area in enumerate(doc["care_areas"]):
            label = "care_areas[%d]" % i
            if isinstance(area, dict) and isinstance(area.get("name"), str):
                label += " '%s'" % area["name"]
            locations[("care_areas", i)] = label
            if not isinstance(area, dict):
                continue
            locations[("care_areas", i, "basic_infusion")] = "care_areas[%d].basic_infusion" % i
            entries = area.get("entries")
            if isinstance(entries, list):
                for j, e in enumerate(entries):
                    label = "care_areas[%d].entries[%d]" % (i, j)
                    if isinstance(e, dict) and isinstance(e.get("drug_name"), str):
                        label += " (%s)" % e["drug_name"]
                    locations[("care_areas", i, "entries", j)] = label
    return Source(name, "json", doc, [], locations)


def _cell_value(field, text):
    kind = FIELD_KIND.get(field, STR)
    if kind == INT and re.fullmatch(r"[0-9]+", text):
        return int(text)
    if kind == BOOL:
        low = text.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
    return text


def _read_csv(text, name):
    problems = []
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header_index = None
    for i, row in enumerate(rows):
        if any(c.strip() for c in row) and not row[0].lstrip().startswith("#"):
            header_index = i
            break
    locations = {(): name, ("library",): "library"}
    doc = {"schema_version": dl.SCHEMA_VERSION, "care_areas": []}
    if header_index is None:
        problems.append(Problem(name, None, "empty file: no header row"))
        return Source(name, "csv", None, problems, locations)
    header_row = header_index + 1
    columns = []
    for c, cell in enumerate(rows[header_index]):
        col = cell.strip().lower().replace(" ", "_")
        if not col:
            columns.append(None)
            continue
        if col not in CSV_COLUMNS:
            near = difflib.get_close_matches(col, CSV_COLUMNS, n=1)
            problems.append(Problem("row %d" % header_row, "column %d" % (c + 1),
                                    "unknown column '%s'%s" % (cell.strip(), " (did you mean '%s'?)"
                                                               % near[0] if near else "")))
            columns.append(None)
            continue
        if col in columns:
            problems.append(Problem("row %d" % header_row, col, "column given twice"))
            columns.append(None)
            continue
        columns.append(col)
    for col in REQUIRED_COLUMNS:
        if col not in columns:
            problems.append(Problem("row %d" % header_row, col, "required column missing"))
    if problems:
        return Source(name, "csv", None, problems, locations)
    areas = {}
    for i in range(header_index + 1, len(rows)):
        row = rows[i]
        rowno = i + 1
        if not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        where = "row %d" % rowno
        if len(row) > len(columns) and any(c.strip() for c in row[len(columns):]):
            problems.append(Problem(where, None, "%d cells, but the header has %d columns"
                                    % (len(row), len(columns))))
        cells = {}
        for col, cell in zip(columns, row):
            if col is not None and cell.strip():
                cells[col] = _cell_value(col, cell.strip())
        area_name = cells.pop("care_area", None)
        if area_name is None:
            problems.append(Problem(where, "care_area", "missing: every row names its care area"))
            continue
        if area_name not in areas:
            areas[area_name] = len(doc["care_areas"])
            doc["care_areas"].append({"name": area_name, "entries": []})
            locations[("care_areas", areas[area_name])] = "care area '%s'" % area_name
        a = areas[area_name]
        area = doc["care_areas"][a]
        drug_id = cells.get("drug_id")
        if isinstance(drug_id, str) and drug_id.lower() == BASIC_ROW:
            if "basic_infusion" in area:
                problems.append(Problem(where, "drug_id", "second basic row for care area '%s' "
                                        "(first on %s)" % (area_name, locations[
                                            ("care_areas", a, "basic_infusion")])))
                continue
            del cells["drug_id"]
            basic = {}
            if "basic_allowed" in cells:
                basic["allowed"] = cells.pop("basic_allowed")
            else:
                problems.append(Problem(where, "basic_allowed", "missing: say yes or no for "
                                        "the basic (no-drug) infusion"))
                basic["allowed"] = False
            basic.update(cells)
            area["basic_infusion"] = basic
            locations[("care_areas", a, "basic_infusion")] = where
        else:
            locations[("care_areas", a, "entries", len(area["entries"]))] = where
            area["entries"].append(cells)
    for a, area in enumerate(doc["care_areas"]):
        if "basic_infusion" not in area:
            problems.append(Problem("care area '%s'" % area["name"], None,
                                    "no '%s' row: add one with basic_allowed yes (and its rate "
                                    "limits) or no" % BASIC_ROW))
            area["basic_infusion"] = {"allowed": False}
    if not doc["care_areas"] and not problems:
        problems.append(Problem(name, None, "no rows after the header"))
    return Source(name, "csv", doc, problems, locations)


def _apply_overrides(src, overrides):
    doc = src.doc
    if not isinstance(doc, dict):
        return
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return
    lib = doc.get("library")
    if lib is None:
        lib = doc["library"] = {}
    if not isinstance(lib, dict):
        return
    for k, v in given.items():
        if k in lib and lib[k] != v:
            src.problems.append(Problem("library", k, "--%s %s differs from %s in the source"
                                        % (k.replace("_", "-"), v, lib[k])))
        else:
            lib[k] = v


# ---- schema errors -> row/field messages -------------------------------------------------

def _what(path):
    if len(path) >= 4 and path[0] == "care_areas" and path[2] == "entries":
        return "a drug entry"
    if len(path) >= 3 and path[2] == "basic_infusion":
        return "a basic-infusion row (no drug, concentration, weight or PCA fields)"
    if len(path) >= 2 and path[0] == "care_areas":
        return "a care area"
    if path and path[0] == "library":
        return "the library identity (library_id, version, name, model)"
    return "a library document"


def _show(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, str):
        return "'%s'" % value
    return str(value)


def _unit_suffix(field):
    unit = FIELD_UNITS.get(field)
    return " " + unit if unit else ""


def _schema_problems(src, err):
    path = list(err.absolute_path)
    v = err.validator
    if v == "required":
        out = []
        for prop in err.validator_value:
            if isinstance(err.instance, dict) and prop not in err.instance:
                loc, _ = src.where(path)
                msg = "missing (required)"
                if prop == "hard_max" and path and path[-1] == "basic_infusion":
                    msg = "missing: an allowed basic infusion needs its rate limits"
                out.append(Problem(loc, prop, msg))
        return out
    if v == "additionalProperties":
        allowed = set(err.schema.get("properties", {}))
        out = []
        for prop in err.instance:
            if prop not in allowed:
                loc, _ = src.where(path)
                out.append(Problem(loc, str(prop), "not a field of %s" % _what(path)))
        return out
    loc, field = src.where(path)
    if field is None and path:
        field = str(path[-1])
    if src.kind == "csv" and field == "allowed":
        field = "basic_allowed"               # the CSV column of basic_infusion.allowed
    src.bad.add(tuple(path))
    inst = err.instance
    if v == "enum":
        options = err.validator_value
        msg = "%s is not a %s (%s)" % (_show(inst), "dose unit" if field == "dose_unit"
                                       else "concentration unit" if field == "conc_unit"
                                       else "known value", ", ".join(options))
        if isinstance(inst, str):
            near = [o for o in options if o.lower() == inst.lower()]
            if not near and inst.lower().replace("ug", "mcg").replace("\u00b5g", "mcg") in options:
                near = [inst.lower().replace("ug", "mcg").replace("\u00b5g", "mcg")]
            if near:
                msg += "; did you mean '%s'?" % near[0]
        return [Problem(loc, field, msg)]
    if err.schema.get("title") == "decimal" and v in ("type", "minimum", "pattern"):
        if v == "minimum":
            return [Problem(loc, field, "%s is negative" % _show(inst))]
        return [Problem(loc, field, "%s is not a decimal number >= 0 (digits with an optional "
                        "'.' as the decimal point)" % _show(inst))]
    if v == "type":
        want = err.validator_value
        words = {"integer": "a whole number", "string": "text", "boolean": "yes or no",
                 "object": "an object", "array": "a list", "number": "a number"}
        return [Problem(loc, field, "%s is not %s" % (_show(inst), words.get(want, want)))]
    if v in ("minimum", "maximum"):
        side = "below the minimum" if v == "minimum" else "above the maximum"
        u = _unit_suffix(field)
        extra = " (2 to 20 psi)" if field == "occlusion_mmhg" else ""
        return [Problem(loc, field, "%s%s %s %s%s%s" % (_show(inst), u, side,
                                                          _show(err.validator_value), u, extra))]
    if v == "pattern":
        desc = err.schema.get("description", "does not match %s" % err.validator_value)
        return [Problem(loc, field, "%s: must be %s" % (_show(inst), desc))]
    if v == "const":
        return [Problem(loc, field, "%s: must be %s" % (_show(inst), _show(err.validator_value)))]
    if v in ("minItems", "maxItems"):
        n = len(inst) if isinstance(inst, list) else 0
        return [Problem(loc, field, "%d items: %s %d" % (
            n, "at least" if v == "minItems" else "at most", err.validator_value))]
    return [Problem(loc, field, err.message)]


def _validate(src):
    problems = []
    for err in sorted(_validator().iter_errors(src.doc), key=lambda e: [str(p) for p in
                                                                          e.absolute_path]):
        problems.extend(_schema_problems(src, err))
    src.problems.extend(problems)


# ---- document -> model -------------------------------------------------------------------

def to_decimal(value):
    if isinstance(value, bool):
        raise TypeError("not a number")
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    return Decimal(value)


def _field_value(src, path, field, raw):
    if raw is None or tuple(path) + (field,) in src.bad:
        return None
    kind = FIELD_KIND.get(field, STR)
    try:
        if kind == DEC:
            return to_decimal(raw)
        if kind == INT:
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        if kind == BOOL:
            return raw if isinstance(raw, bool) else None
        return raw if isinstance(raw, str) else None
    except (ArithmeticError, TypeError, ValueError):
        return None


def empty_entry():
    return {f: None for f in ENTRY_FIELDS}


def build_model(src):
    """The model of a read source (see module doc); tolerant of documents with errors."""
    doc = src.doc if isinstance(src.doc, dict) else {}
    lib = doc.get("library") if isinstance(doc.get("library"), dict) else {}
    model = {"library": {k: (lib.get(k) if ("library", k) not in src.bad else None)
                         for k in META_FIELDS},
             "care_areas": []}
    areas = doc.get("care_areas") if isinstance(doc.get("care_areas"), list) else []
    bad_fields = {}                          # parent path -> names of its fields that failed
    for p in src.bad:
        if p:
            bad_fields.setdefault(tuple(p[:-1]), set()).add(p[-1])
    for i, area in enumerate(areas):
        if not isinstance(area, dict):
            continue
        apath = ("care_areas", i)
        name = area.get("name") if isinstance(area.get("name"), str) else None
        out = {"name": name, "basic_allowed": False, "entries": [],
               "_where": src.where(apath)[0], "_basic": None}
        basic = area.get("basic_infusion")
        if isinstance(basic, dict):
            bpath = apath + ("basic_infusion",)
            allowed = basic.get("allowed") is True
            out["basic_allowed"] = allowed
            b = empty_entry()
            b.update(drug_id=dl.BASIC_DRUG_ID, drug_name=dl.BASIC_NAME, dose_unit="mL/h")
            for f in BASIC_FIELDS:
                if f != "dose_unit":
                    b[f] = _field_value(src, bpath, f, basic.get(f))
            b["_where"] = src.where(bpath)[0]
            b["_bad"] = bad_fields.get(bpath, set())
            b["_basic"] = True
            out["_basic"] = b
            if allowed:
                out["entries"].append(b)
        entries = area.get("entries") if isinstance(area.get("entries"), list) else []
        for j, e in enumerate(entries):
            if not isinstance(e, dict):
                continue
            epath = apath + ("entries", j)
            d = empty_entry()
            for f in ENTRY_FIELDS:
                d[f] = _field_value(src, epath, f, e.get(f))
            d["_where"] = src.where(epath)[0]
            d["_bad"] = bad_fields.get(epath, set())
            d["_basic"] = False
            out["entries"].append(d)
        model["care_areas"].append(out)
    return model


def content(model):
    """The model without bookkeeping keys, for comparisons."""
    return {
        "library": dict(model["library"]),
        "care_areas": [{"name": a["name"], "basic_allowed": a["basic_allowed"],
                        "entries": [{f: e[f] for f in ENTRY_FIELDS} for e in a["entries"]]}
                       for a in model["care_areas"]],
    }


# ---- writing -------------------------------------------------------------------------------

def format_decimal(d):
    """Exact text of a Decimal without exponent or trailing zeros: 5.500 -> '5.5'."""
    if d == 0:
        return "0"
    return "{:f}".format(d.normalize())


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return str(value)


def to_csv(model):
    """CSV text of a model: one row per entry, one basic row per care area."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for area in model["care_areas"]:
        basic = next((e for e in area["entries"] if e["drug_id"] == dl.BASIC_DRUG_ID), None)
        row = {"care_area": area["name"], "drug_id": BASIC_ROW,
               "basic_allowed": area["basic_allowed"]}
        if basic is not None:
            row.update({f: basic[f] for f in BASIC_FIELDS})
        w.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        for e in area["entries"]:
            if e["drug_id"] == dl.BASIC_DRUG_ID:
                continue
            row = dict(e, care_area=area["name"])
            w.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def _json_value(value):
    if isinstance(value, Decimal):
        return format_decimal(value)
    return value


def to_json(model):
    """JSON text of a model; decimals are written as exact strings ("0.25")."""
    doc = {"schema_version": dl.SCHEMA_VERSION}
    lib = {k: v for k, v in model["library"].items() if k in META_FIELDS and v is not None}
    if lib:
        doc["library"] = lib
    doc["care_areas"] = []
    for area in model["care_areas"]:
        basic = next((e for e in area["entries"] if e["drug_id"] == dl.BASIC_DRUG_ID), None)
        b = {"allowed": area["basic_allowed"]}
        if basic is not None:
            b.update({f: _json_value(basic[f]) for f in BASIC_FIELDS
                      if basic[f] is not None and f != "dose_unit"})
        entries = [{f: _json_value(e[f]) for f in ENTRY_FIELDS if e[f] is not None}
                   for e in area["entries"] if e["drug_id"] != dl.BASIC_DRUG_ID]
        doc["care_areas"].append({"name": area["name"], "basic_infusion": b,
                                  "entries": entries})
    return json.dumps(doc, indent=2) + "\n"
