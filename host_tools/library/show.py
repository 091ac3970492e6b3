"""Read a compiled drug library back (SR-LIB-2): verify, decode to the model, print tables.

Owns ``decode`` (binary -> the same model ``source.build_model`` gives, values as
exact Decimals) and its rich rendering for ``pumpctl library show``.  Decoding
goes through the pump's own reader, ``firmware/druglib.py`` (streamed
verification, then one record at a time by seeking), so what the host shows is
what the pump will read.  Also ``load_any``: a source or a binary, for diff.
"""
import datetime
from decimal import Decimal

from rich.table import Table

from firmware import druglib as dl
from host_tools.library import check as ck
from host_tools.library import source as sm
from host_tools.library.source import format_decimal


class ShowError(ValueError):
    """The file cannot be shown: unreadable, refused by verification, or a source with errors."""


def _dec(value, places):
    return None if value is None else Decimal(value).scaleb(-places)


def entry_to_dict(e, drug_name):
    """One druglib.Entry as a model entry (exact Decimals, None where unset)."""
    unit = dl.DOSE_UNITS[e.dose_unit] if 0 < e.dose_unit < len(dl.DOSE_UNITS) else None
    if unit is None:
        raise ShowError("entry %d: dose unit code %d unknown" % (e.index, e.dose_unit))
    places = unit[1]
    d = sm.empty_entry()
    d.update(drug_id=e.drug_id, drug_name=drug_name, dose_unit=unit[0],
             default=_dec(e.default, places), soft_min=_dec(e.soft_min, places),
             soft_max=_dec(e.soft_max, places), hard_min=_dec(e.hard_min, places),
             hard_max=_dec(e.hard_max, places),
             vtbi_min_ml=_dec(e.vtbi_min_ul, dl.VOLUME_DECIMALS),
             vtbi_max_ml=_dec(e.vtbi_max_ul, dl.VOLUME_DECIMALS),
             weight_min_kg=_dec(e.weight_min_g, dl.WEIGHT_DECIMALS),
             weight_max_kg=_dec(e.weight_max_g, dl.WEIGHT_DECIMALS),
             occlusion_mmhg=e.occlusion_mmhg, air_limit_ul=e.air_limit_ul)
    if e.conc_unit:
        if e.conc_unit >= len(dl.CONC_UNITS):
            raise ShowError("entry %d: concentration unit code %d unknown"
                            % (e.index, e.conc_unit))
        d.update(conc_amount=_dec(e.conc_amount, dl.CONC_DECIMALS),
                 conc_unit=dl.CONC_UNITS[e.conc_unit][0],
                 conc_volume_ml=_dec(e.conc_volume_ul, dl.VOLUME_DECIMALS))
    if e.pca is not None:
        bolus, lockout, per_h, dose_1h, dose_4h = e.pca
        d.update(pca_max_bolus=_dec(bolus, places), pca_min_lockout_minutes=lockout,
                 pca_max_boluses_per_h=per_h, pca_max_dose_1h=_dec(dose_1h, places),
                 pca_max_dose_4h=_dec(dose_4h, places))
    return d


def decode_file(f, key, expected_model=None):
    """(info, model) of an open binary file: verified, then read record by record."""
    try:
        header = dl.verify(f, key, expected_model)
        lib = dl.Library(f)
        model = {"library": {"library_id": lib.library_id, "version": lib.version,
                             "name": lib.name or None, "model": lib.model},
                 "care_areas": []}
        for ci in range(lib.care_area_count):
            area = lib.care_area(ci)
            entries = []
            for i in range(area.first_entry, area.first_entry + area.entry_count):
                e = lib.entry(i)
                if e.care_area != ci:
                    raise ShowError("entry %d is filed under care area %d, found in %d"
                                    % (i, e.care_area, ci))
                entries.append(entry_to_dict(e, lib.drug_name(e.drug_id)))
            model["care_areas"].append({"name": area.name, "basic_allowed": area.basic_allowed,
                                        "entries": entries})
    except dl.LibraryError as e:
        raise ShowError(str(e))
    except UnicodeError:
        raise ShowError("a name in the string table is not UTF-8 text")
    info = {"schema_version": header.schema_version, "created_s": header.created_s,
            "size": header.total_size, "entry_count": header.entry_count,
            "drug_count": header.drug_count, "ext_count": header.ext_count,
            "string_size": header.string_size}
    return info, model


def decode(path, key, expected_model=None):
    try:
        with open(path, "rb") as f:
            return decode_file(f, key, expected_model)
    except OSError as e:
        raise ShowError("%s: %s" % (path, e.strerror))


def is_binary(path):
    try:
        with open(path, "rb") as f:
            return f.read(len(dl.MAGIC)) == dl.MAGIC
    except OSError as e:
        raise ShowError("%s: %s" % (path, e.strerror))


def load_any(path, key=None):
    """Model of a binary (needs key) or of a source file (must check clean)."""
    if is_binary(path):
        if key is None:
            raise ShowError("%s is a compiled library: give --key to verify it" % path)
        return decode(path, key)[1]
    model, problems = ck.check_file(path)
    errs = ck.errors(problems)
    if model is None or errs:
        raise ShowError("%s has %d errors (run pumpctl library check %s):\n%s"
                        % (path, len(errs), path, "\n".join(str(p) for p in errs[:20])))
    return model


# ---- rendering -------------------------------------------------------------------------------

def _v(value):
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return str(value)


def _range(lo, hi):
    if lo is None and hi is None:
        return "-"
    if lo is None:
        return "<= %s" % _v(hi)
    if hi is None:
        return ">= %s" % _v(lo)
    return "%s-%s" % (_v(lo), _v(hi))


def created_text(created_s):
    return datetime.datetime.fromtimestamp(created_s, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def identity_table(path, info, model, key_fp):
    lib = model["library"]
    t = Table(title="Drug library %s" % path, show_header=False)
    t.add_column("field")
    t.add_column("value")
    t.add_row("name", lib["name"] or "-")
    t.add_row("library id / version", "%d / %d" % (lib["library_id"], lib["version"]))
    t.add_row("pump model", lib["model"])
    t.add_row("schema version", str(info["schema_version"]))
    t.add_row("created", created_text(info["created_s"]))
    t.add_row("size", "%d bytes (%d entries, %d drugs, %d weight/PCA records, %d B of names)"
              % (info["size"], info["entry_count"], info["drug_count"], info["ext_count"],
                 info["string_size"]))
    t.add_row("integrity", "CRC-32 and HMAC-SHA256 tag verified with key %s" % key_fp)
    return t


def care_area_table(area):
    basic = "basic infusion %s" % ("allowed" if area["basic_allowed"] else "forbidden")
    t = Table(title="%s (%s)" % (area["name"], basic))
    for col in ("drug #id", "concentration", "dose unit", "default", "soft", "hard",
                "VTBI mL", "weight kg", "PCA: bolus, lockout, per h, 1 h, 4 h",
                "occl. mmHg / air uL"):
        t.add_column(col, overflow="fold")      # never cut a name or a number short
    for e in area["entries"]:
        pca = "-"
        if e["pca_max_bolus"] is not None:
            amount = ck.field_unit("pca_max_bolus", e)
            pca = "%s %s, %s min, %s/h, %s, %s" % (
                _v(e["pca_max_bolus"]), amount, _v(e["pca_min_lockout_minutes"]),
                _v(e["pca_max_boluses_per_h"]), _v(e["pca_max_dose_1h"]),
                _v(e["pca_max_dose_4h"]))
        t.add_row("%s #%d" % (e["drug_name"] or "", e["drug_id"]),
                  ck.concentration_text(e) or "-", e["dose_unit"], _v(e["default"]),
                  _range(e["soft_min"], e["soft_max"]), _range(e["hard_min"], e["hard_max"]),
                  _range(e["vtbi_min_ml"], e["vtbi_max_ml"]),
                  _range(e["weight_min_kg"], e["weight_max_kg"]), pca,
                  "%s / %s" % (_v(e["occlusion_mmhg"]), _v(e["air_limit_ul"])))
    return t
