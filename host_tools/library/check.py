"""`pumpctl library check`: every rule of a drug library, every error at once (SR-LIB-1).

Owns the semantic rules that relate fields and rows, on top of the JSON
Schema's shape, name, unit and whole-number checks (``source``): exact decimals
that fit the binary's scaled integers, soft range inside the hard range,
default inside the soft range, the pump's absolute limits (rates 0.1-500 mL/h,
VTBI 0.1-9999 mL, weight), concentrations present and in a unit that gives the
dose, weight limits exactly where dosing is per kg, complete and consistent
PCA limits, one entry per drug and concentration in a care area (equivalent
concentrations such as 5 mg/1 mL and 500 mg/100 mL count as the same), one
name per drug id, and the table sizes the binary can index.  Each problem names
its row (or JSON path), field, value and limit, e.g.
``row 17, soft_max: 120 mL/h above hard_max 100 mL/h``.  Warnings (a limit the
pump's own limits make unreachable, a care area where nothing can be
programmed) are listed but do not fail the check.
"""
import re
from decimal import Decimal
from fractions import Fraction

from firmware import druglib as dl
from host_tools.library import source as sm
from host_tools.library.source import DOSE_FIELDS, PCA_FIELDS, Problem, format_decimal

# the pump's absolute limits (SR-TH-2, SPEC section 2)
RATE_MIN_ML_H = Decimal("0.1")
RATE_MAX_ML_H = Decimal("500")
RATE_STEP_ML_H = Decimal("0.1")
VTBI_MIN_ML = Decimal("0.1")
VTBI_MAX_ML = Decimal("9999")
WEIGHT_MIN_KG = Decimal("0.1")
WEIGHT_MAX_KG = Decimal("500")

UNITS = {u[0]: u for u in dl.DOSE_UNITS if u}
CONC = {u[0]: u for u in dl.CONC_UNITS if u}


def unit_decimals(field, dose_unit):
    """Decimal places the binary keeps for a field, or None if its unit is unknown."""
    if field in ("conc_amount",):
        return dl.CONC_DECIMALS
    if field in ("conc_volume_ml", "vtbi_min_ml", "vtbi_max_ml"):
        return dl.VOLUME_DECIMALS
    if field in ("weight_min_kg", "weight_max_kg"):
        return dl.WEIGHT_DECIMALS
    if dose_unit in UNITS:
        return UNITS[dose_unit][1]
    return None


def field_unit(field, entry):
    """Unit text of a field's value in this entry."""
    if field in DOSE_FIELDS:
        return entry.get("dose_unit") or ""
    if field in ("pca_max_bolus", "pca_max_dose_1h", "pca_max_dose_4h"):
        u = UNITS.get(entry.get("dose_unit"))
        return u[2] if u else ""
    if field == "conc_amount":
        return entry.get("conc_unit") or ""
    return sm.FIELD_UNITS.get(field, "")


def q(value, unit):
    """'120 mL/h': a value with its unit."""
    text = format_decimal(value) if isinstance(value, Decimal) else str(value)
    return text + (" " + unit if unit else "")


def fraction_text(value, places=1):
    """Exact rational shown rounded half-up to ``places`` decimals (display only)."""
    scaled = value * 10 ** places
    n = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    return format_decimal(Decimal(n).scaleb(-places))


def concentration_text(e):
    if e.get("conc_amount") is None or e.get("conc_unit") is None:
        return ""
    vol = e.get("conc_volume_ml")
    per = "mL" if vol is None or vol == 1 else "%s mL" % format_decimal(vol)
    return "%s %s/%s" % (format_decimal(e["conc_amount"]), e["conc_unit"], per)


def entry_label(e):
    if e.get("drug_id") == dl.BASIC_DRUG_ID:
        return dl.BASIC_NAME
    name = e.get("drug_name") or "drug %s" % e.get("drug_id")
    conc = concentration_text(e)
    return name + (" " + conc if conc else "")


def concentration_key(e):
    """Exact concentration in the quantity's base unit per mL (None when not given)."""
    if e.get("conc_amount") is None or e.get("conc_unit") not in CONC or not e.get(
            "conc_volume_ml"):
        return None
    _, quantity, factor = CONC[e["conc_unit"]]
    return (quantity, Fraction(e["conc_amount"]) * factor / Fraction(e["conc_volume_ml"]))


class Checker:
    def __init__(self):
        self.problems = []

    def error(self, e, field, message):
        self.problems.append(Problem(e["_where"], field, message))

    def warn(self, e, field, message):
        self.problems.append(Problem(e["_where"], field, message, "warning"))


def _ok(e, *fields):
    """True when every field is set and passed the schema."""
    bad = e["_bad"]
    for f in fields:
        if e[f] is None or f in bad:
            return False
    return True


U32_LIMIT = {p: Decimal(dl.U32_MAX).scaleb(-p) for p in range(8)}
DEC_FIELDS = tuple(f for f in sm.ENTRY_FIELDS if sm.FIELD_KIND[f] == sm.DEC)


def _check_scale(c, e):
    unit = e.get("dose_unit")
    bad = e["_bad"]
    for f in DEC_FIELDS:
        v = e[f]
        if v is None or f in bad:
            continue
        places = unit_decimals(f, unit)
        if places is None:
            continue
        exponent = v.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= -places and v <= U32_LIMIT[places]:
            continue                  # fast path: few enough decimals and small enough
        scaled = v.scaleb(places)
        u = field_unit(f, e)
        if scaled != scaled.to_integral_value():
            c.error(e, f, "%s has more decimal places than the %d the library keeps for %s"
                    % (q(v, u), places, u or f))
            e["_bad"].add(f)
        elif scaled > dl.U32_MAX:
            c.error(e, f, "%s above the largest value the library stores (%s %s)"
                    % (q(v, u), format_decimal(Decimal(dl.U32_MAX).scaleb(-places)), u))
            e["_bad"].add(f)


def _check_ranges(c, e):
    u = e.get("dose_unit") or ""
    if _ok(e, "hard_max") and e["hard_max"] == 0:
        c.error(e, "hard_max", "0 %s: the hard maximum must be above 0" % u)
    if _ok(e, "hard_min", "hard_max") and e["hard_min"] > e["hard_max"]:
        c.error(e, "hard_min", "%s above hard_max %s" % (q(e["hard_min"], u), q(e["hard_max"], u)))
    if _ok(e, "soft_min", "soft_max") and e["soft_min"] > e["soft_max"]:
        c.error(e, "soft_min", "%s above soft_max %s" % (q(e["soft_min"], u), q(e["soft_max"], u)))
    if _ok(e, "soft_max", "hard_max") and e["soft_max"] > e["hard_max"]:
        c.error(e, "soft_max", "%s above hard_max %s" % (q(e["soft_max"], u), q(e["hard_max"], u)))
    if _ok(e, "soft_max", "hard_min") and e["soft_max"] < e["hard_min"]:
        c.error(e, "soft_max", "%s below hard_min %s" % (q(e["soft_max"], u), q(e["hard_min"], u)))
    if _ok(e, "soft_min", "hard_min") and e["soft_min"] < e["hard_min"]:
        c.error(e, "soft_min", "%s below hard_min %s" % (q(e["soft_min"], u), q(e["hard_min"], u)))
    if _ok(e, "soft_min", "hard_max") and e["soft_min"] > e["hard_max"]:
        c.error(e, "soft_min", "%s above hard_max %s" % (q(e["soft_min"], u), q(e["hard_max"], u)))
    if _ok(e, "default"):
        d = e["default"]
        for lo in ("soft_min", "hard_min"):
            if _ok(e, lo):
                if d < e[lo]:
                    c.error(e, "default", "%s below %s %s" % (q(d, u), lo, q(e[lo], u)))
                break
        for hi in ("soft_max", "hard_max"):
            if _ok(e, hi):
                if d > e[hi]:
                    c.error(e, "default", "%s above %s %s" % (q(d, u), hi, q(e[hi], u)))
                break
    if u == "mL/h":
        for f in DOSE_FIELDS:
            if not _ok(e, f):
                continue
            v = e[f]
            if v > RATE_MAX_ML_H:
                c.error(e, f, "%s above the pump's maximum rate %s"
                        % (q(v, u), q(RATE_MAX_ML_H, u)))
            elif v < RATE_MIN_ML_H and not (v == 0 and f in ("hard_min", "default", "hard_max")):
                c.error(e, f, "%s below the pump's minimum rate %s"
                        % (q(v, u), q(RATE_MIN_ML_H, u)))
        if _ok(e, "default") and e["default"] % RATE_STEP_ML_H != 0:
            c.error(e, "default", "%s is not a multiple of the pump's %s rate step"
                    % (q(e["default"], u), q(RATE_STEP_ML_H, u)))
    for f in ("vtbi_min_ml", "vtbi_max_ml"):
        if _ok(e, f):
            if e[f] < VTBI_MIN_ML:
                c.error(e, f, "%s below the pump's minimum VTBI %s" % (q(e[f], "mL"),
                                                                     q(VTBI_MIN_ML, "mL")))
            elif e[f] > VTBI_MAX_ML:
                c.error(e, f, "%s above the pump's maximum VTBI %s" % (q(e[f], "mL"),
                                                                     q(VTBI_MAX_ML, "mL")))
    if _ok(e, "vtbi_min_ml", "vtbi_max_ml") and e["vtbi_min_ml"] > e["vtbi_max_ml"]:
        c.error(e, "vtbi_min_ml", "%s above vtbi_max_ml %s" % (q(e["vtbi_min_ml"], "mL"),
                                                              q(e["vtbi_max_ml"], "mL")))


def _check_concentration(c, e):
    u = e.get("dose_unit")
    parts = ("conc_amount", "conc_unit", "conc_volume_ml")
    given = [f for f in parts if e.get(f) is not None or f in e["_bad"]]
    if u in UNITS and u != "mL/h" and not given:
        c.error(e, "conc_amount", "missing: a dose in %s needs a concentration (conc_amount, "
                "conc_unit, conc_volume_ml)" % u)
        return
    if given and len(given) < len(parts):
        for f in parts:
            if f not in given:
                c.error(e, f, "missing: a concentration needs conc_amount, conc_unit and "
                        "conc_volume_ml")
        return
    for f in ("conc_amount", "conc_volume_ml"):
        if _ok(e, f) and e[f] == 0:
            c.error(e, f, "%s: a concentration must be above 0" % q(e[f], field_unit(f, e)))
    if _ok(e, "conc_unit") and u in UNITS and u != "mL/h":
        quantity = CONC[e["conc_unit"]][1]
        want = dl.AMOUNT_UNITS[UNITS[u][2]][0]
        if quantity != want:
            fits = ", ".join(n for n, qq, _ in CONC.values() if qq == want)
            c.error(e, "conc_unit", "'%s' cannot give a dose in %s (use %s)"
                    % (e["conc_unit"], u, fits))


def _check_weight(c, e):
    u = e.get("dose_unit")
    per_kg = u in UNITS and UNITS[u][3]
    fields = ("weight_min_kg", "weight_max_kg")
    if u not in UNITS:
        return
    if not per_kg:
        for f in fields:
            if e.get(f) is not None:
                c.error(e, f, "weight limits on a non-per-kg unit (%s)" % u)
        return
    for f in fields:
        if e.get(f) is None and f not in e["_bad"]:
            c.error(e, f, "missing: dosing in %s needs the patient weight range" % u)
    for f in fields:
        if _ok(e, f):
            if e[f] < WEIGHT_MIN_KG:
                c.error(e, f, "%s below the pump's %s" % (q(e[f], "kg"), q(WEIGHT_MIN_KG, "kg")))
            elif e[f] > WEIGHT_MAX_KG:
                c.error(e, f, "%s above the pump's %s" % (q(e[f], "kg"), q(WEIGHT_MAX_KG, "kg")))
    if _ok(e, *fields) and e["weight_min_kg"] > e["weight_max_kg"]:
        c.error(e, "weight_min_kg", "%s above weight_max_kg %s" % (q(e["weight_min_kg"], "kg"),
                                                                  q(e["weight_max_kg"], "kg")))


def _check_pca(c, e):
    given = [f for f in PCA_FIELDS if e.get(f) is not None or f in e["_bad"]]
    if not given:
        return
    u = e.get("dose_unit")
    if u in UNITS and UNITS[u][3]:
        c.error(e, given[0], "PCA limits on a per-kg unit (%s) are not supported" % u)
        return
    for f in PCA_FIELDS:
        if f not in given:
            c.error(e, f, "missing: PCA needs all of %s" % ", ".join(PCA_FIELDS))
    a = UNITS[u][2] if u in UNITS else ""
    if _ok(e, "pca_max_bolus") and e["pca_max_bolus"] == 0:
        c.error(e, "pca_max_bolus", "0 %s: a PCA bolus must be above 0" % a)
    if _ok(e, "pca_max_bolus", "pca_max_dose_1h") and e["pca_max_dose_1h"] < e["pca_max_bolus"]:
        c.error(e, "pca_max_dose_1h", "%s below pca_max_bolus %s: not even one bolus fits"
                % (q(e["pca_max_dose_1h"], a), q(e["pca_max_bolus"], a)))
    if _ok(e, "pca_max_dose_1h", "pca_max_dose_4h") and e["pca_max_dose_4h"] < e["pca_max_dose_1h"]:
        c.error(e, "pca_max_dose_4h", "%s below pca_max_dose_1h %s"
                % (q(e["pca_max_dose_4h"], a), q(e["pca_max_dose_1h"], a)))


def _check_rate_reach(c, e):
    """Warn when the hard maximum dose needs a rate above the pump's 500 mL/h."""
    u = e.get("dose_unit")
    if u not in UNITS or u == "mL/h" or not _ok(e, "hard_max"):
        return
    key = concentration_key(e)
    if key is None or key[1] == 0 or key[0] != dl.AMOUNT_UNITS[UNITS[u][2]][0]:
        return
    _, _, amount, per_kg, seconds = UNITS[u]
    dose_per_h = Fraction(e["hard_max"]) * dl.AMOUNT_UNITS[amount][1] * 3600 / seconds
    if per_kg:
        if not _ok(e, "weight_max_kg"):
            return
        dose_per_h *= Fraction(e["weight_max_kg"])
    rate_ml_h = dose_per_h / key[1]
    if rate_ml_h > RATE_MAX_ML_H:
        at = " for %s" % q(e["weight_max_kg"], "kg") if per_kg else ""
        c.warn(e, "hard_max", "%s at %s%s needs %s mL/h: the pump's %s limit applies first"
               % (q(e["hard_max"], u), concentration_text(e), at, fraction_text(rate_ml_h),
                  q(RATE_MAX_ML_H, "mL/h")))


def _check_basic(c, area):
    b = area["_basic"]
    if b is None or "allowed" in b["_bad"]:
        return
    if not area["basic_allowed"]:
        for f in sm.BASIC_FIELDS:
            if f != "dose_unit" and (b.get(f) is not None or f in b["_bad"]):
                c.error(b, f, "limit given for a forbidden basic infusion (basic_allowed no)")


def check_model(model):
    """All semantic problems of a model built from a source (errors and warnings)."""
    c = Checker()
    names = {}
    ids = {}
    by_name = {}
    n_entries = 0
    for area in model["care_areas"]:
        _check_basic(c, area)
        if area["name"] is not None:
            if area["name"] in names:
                c.problems.append(Problem(area["_where"], "name", "care area '%s' repeats %s"
                                          % (area["name"], names[area["name"]])))
            names.setdefault(area["name"], area["_where"])
        keys = {}
        for e in area["entries"]:
            n_entries += 1
            _check_scale(c, e)
            _check_ranges(c, e)
            if e["_basic"]:
                continue
            _check_concentration(c, e)
            _check_weight(c, e)
            _check_pca(c, e)
            _check_rate_reach(c, e)
            if _ok(e, "drug_id", "drug_name"):
                did, name = e["drug_id"], e["drug_name"]
                if did in ids and ids[did][0] != name:
                    c.error(e, "drug_name", "'%s', but drug_id %d is '%s' on %s"
                            % (name, did, ids[did][0], ids[did][1]))
                elif name in by_name and by_name[name][0] != did:
                    c.error(e, "drug_id", "%d, but '%s' is drug_id %d on %s"
                            % (did, name, by_name[name][0], by_name[name][1]))
                ids.setdefault(did, (name, e["_where"]))
                by_name.setdefault(name, (did, e["_where"]))
            if _ok(e, "drug_id") and not ({"conc_amount", "conc_unit", "conc_volume_ml"}
                                          & e["_bad"]):
                key = (e["drug_id"], concentration_key(e))
                if key in keys:
                    first = keys[key]
                    c.error(e, "drug_id", "%s duplicates %s (%s) in care area '%s'"
                            % (entry_label(e), first["_where"], entry_label(first), area["name"]))
                else:
                    keys[key] = e
        if not area["entries"]:
            c.problems.append(Problem(area["_where"], None, "no drug entries and basic infusion "
                                      "forbidden: nothing can be programmed here", "warning"))
        if len(area["entries"]) > 0xFFFF:
            c.problems.append(Problem(area["_where"], None, "%d entries: a care area holds at "
                                      "most %d" % (len(area["entries"]), 0xFFFF)))
    if n_entries > 0xFFFF:
        c.problems.append(Problem("library", None, "%d entries: a library holds at most %d"
                                  % (n_entries, 0xFFFF)))
    return c.problems


def _natural(problem):
    """Sort key: library-level first, then by row / JSON path with numbers compared as numbers."""
    parts = re.split(r"(\d+)", problem.where)
    return (problem.where.startswith(("row", "care_areas")),
            [int(p) if p.isdigit() else p for p in parts])


def check_source(src):
    """(model, problems): reading, schema and semantic problems of a read source, in row order."""
    if src.doc is None:
        return None, sorted(src.problems, key=_natural)
    model = sm.build_model(src)
    problems = list(src.problems) + check_model(model)
    return model, sorted(problems, key=_natural)


def check_file(path, overrides=None):
    return check_source(sm.load(path, overrides))


def errors(problems):
    return [p for p in problems if p.severity == "error"]


def warnings(problems):
    return [p for p in problems if p.severity == "warning"]


def require_identity(model):
    """Problems for a model about to be compiled without library id or version."""
    out = []
    lib = model["library"]
    for f, opt in (("library_id", "--library-id"), ("version", "--version")):
        if lib.get(f) is None:
            out.append(Problem("library", f, "missing: give %s or library.%s in a JSON source"
                               % (opt, f)))
    return out


def summary(model):
    areas = model["care_areas"]
    entries = [e for a in areas for e in a["entries"] if e["drug_id"] != dl.BASIC_DRUG_ID]
    drugs = {e["drug_id"] for e in entries}
    basic = [a["name"] for a in areas if a["basic_allowed"]]
    return ("%d care areas, %d drug entries (%d drugs, %d with PCA limits, %d per kg); basic "
            "infusion allowed in %d of %d care areas" % (
                len(areas), len(entries), len(drugs),
                sum(1 for e in entries if e["pca_max_bolus"] is not None),
                sum(1 for e in entries if e["weight_min_kg"] is not None),
                len(basic), len(areas)))
