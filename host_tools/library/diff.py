"""What changed between two drug libraries (SR-LIB-2): `pumpctl library diff A B`.

Owns the comparison of two models (from sources or verified binaries): library
identity, care areas added or removed, basic infusion allowed or not, entries
added or removed, and every changed field of an entry with its old and new value
and unit.  Entries are matched by care area, drug id and concentration compared
exactly (5 mg/1 mL matches 500 mg/100 mL), so a re-written concentration shows as
a changed field, not as a removal and an addition.
"""
from decimal import Decimal

from host_tools.library import check as ck
from host_tools.library.source import ENTRY_FIELDS, META_FIELDS, format_decimal

ADDED = "+"
REMOVED = "-"
CHANGED = "~"


class Change:
    def __init__(self, kind, subject, details=()):
        self.kind = kind
        self.subject = subject
        self.details = list(details)

    def __str__(self):
        text = "%s %s" % (self.kind, self.subject)
        if self.details:
            text += ": " + "; ".join(self.details)
        return text

    def __repr__(self):
        return "Change(%r)" % str(self)


def _v(value, unit=""):
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = format_decimal(value) if isinstance(value, Decimal) else str(value)
    return text + (" " + unit if unit else "")


def _key(e):
    return (e["drug_id"], ck.concentration_key(e))


def entry_changes(a, b):
    """Per-field differences of two matched entries, e.g. 'hard_max 150 -> 160 mg/h'."""
    out = []
    for f in ENTRY_FIELDS:
        va, vb = a[f], b[f]
        if va == vb:
            continue
        ua, ub = ck.field_unit(f, a), ck.field_unit(f, b)
        if f in ("conc_unit", "dose_unit", "drug_name"):
            out.append("%s %s -> %s" % (f, _v(va), _v(vb)))
        elif ua == ub:
            out.append("%s %s -> %s" % (f, _v(va), _v(vb, ub)))
        else:
            out.append("%s %s -> %s" % (f, _v(va, ua), _v(vb, ub)))
    return out


def diff_models(a, b):
    """List of Change from model ``a`` to model ``b`` (empty when the content is equal)."""
    changes = []
    meta = ["%s %s -> %s" % (f, _v(a["library"].get(f)), _v(b["library"].get(f)))
            for f in META_FIELDS if a["library"].get(f) != b["library"].get(f)]
    if meta:
        changes.append(Change(CHANGED, "library", meta))
    areas_a = {x["name"]: x for x in a["care_areas"]}
    areas_b = {x["name"]: x for x in b["care_areas"]}
    for name, area in areas_a.items():
        if name not in areas_b:
            changes.append(Change(REMOVED, "care area '%s' (%d entries)"
                                  % (name, len(area["entries"]))))
    for name, area in areas_b.items():
        if name not in areas_a:
            changes.append(Change(ADDED, "care area '%s' (%d entries)"
                                  % (name, len(area["entries"]))))
    for name, area_b in areas_b.items():
        area_a = areas_a.get(name)
        if area_a is None:
            continue
        if area_a["basic_allowed"] != area_b["basic_allowed"]:
            changes.append(Change(CHANGED, "care area '%s'" % name, [
                "basic infusion %s -> %s" % ("allowed" if area_a["basic_allowed"] else
                                             "forbidden",
                                             "allowed" if area_b["basic_allowed"] else
                                             "forbidden")]))
        ea = {_key(e): e for e in area_a["entries"]}
        eb = {_key(e): e for e in area_b["entries"]}
        for k, e in ea.items():
            if k not in eb:
                changes.append(Change(REMOVED, "%s / %s (%s)" % (name, ck.entry_label(e),
                                                                e["dose_unit"])))
        for k, e in eb.items():
            if k not in ea:
                changes.append(Change(ADDED, "%s / %s (%s)" % (name, ck.entry_label(e),
                                                              e["dose_unit"])))
            else:
                details = entry_changes(ea[k], e)
                if details:
                    changes.append(Change(CHANGED, "%s / %s" % (name, ck.entry_label(ea[k])),
                                          details))
    return changes


def summary(changes):
    n = {k: sum(1 for c in changes if c.kind == k) for k in (ADDED, REMOVED, CHANGED)}
    if not changes:
        return "no differences"
    return "%d added, %d removed, %d changed" % (n[ADDED], n[REMOVED], n[CHANGED])
