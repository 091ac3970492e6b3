"""Compile a checked drug library into the pump's signed binary (SR-LIB-2, PT-7).

Owns the writer side of the binary format (``docs/DRUG_LIBRARY.md``; record
layouts and unit scales come from ``firmware/druglib.py``): fixed header,
care-area table, drug table (id -> name), fixed-size entry records sorted by
(care area, drug id, concentration) for binary search by seeking, a
deduplicated extension table (weight range, PCA limits), a deduplicated string
table, CRC-32 over everything before it and an HMAC-SHA256 tag with the fleet
key over everything before the tag.  Every number is an exact Decimal turned
into a scaled integer; a value that does not fit exactly is refused, never
rounded.  Also reads the fleet key file (32 raw bytes or 64 hex digits).
"""
import hashlib
import hmac
import os
import stat
import struct
import time

from firmware import druglib as dl
from firmware.crc import crc32
from firmware.service import MODEL as DEFAULT_MODEL

UNIT_CODE = {dl.DOSE_UNITS[c][0]: c for c in range(1, len(dl.DOSE_UNITS))}
CONC_CODE = {dl.CONC_UNITS[c][0]: c for c in range(1, len(dl.CONC_UNITS))}


class CompileError(ValueError):
    """The model cannot be written as a binary; the message says which value and why."""


class KeyFileError(ValueError):
    """The key file is missing or not a 32-byte key."""


def load_key(path):
    """(key, warnings) from a key file: 32 raw bytes, or 64 hex digits (whitespace ignored)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
        mode = os.stat(path).st_mode
    except OSError as e:
        raise KeyFileError("key file %s: %s" % (path, e.strerror))
    warnings = []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append("key file %s is readable by other users: chmod 600 it" % path)
    if len(raw) == dl.KEY_SIZE:
        return raw, warnings
    text = raw.decode("ascii", "replace").strip().replace(" ", "")
    if len(text) == 2 * dl.KEY_SIZE:
        try:
            return bytes.fromhex(text), warnings
        except ValueError:
            pass
    raise KeyFileError("key file %s: %d bytes; a fleet key is %d raw bytes or %d hex digits"
                       % (path, len(raw), dl.KEY_SIZE, 2 * dl.KEY_SIZE))


def key_fingerprint(key):
    """Short public name of a key (first 8 hex digits of its SHA-256) for display."""
    return hashlib.sha256(key).hexdigest()[:8]


def scaled(value, places, what):
    """Decimal -> exact integer value * 10**places in 0..U32_MAX, else CompileError."""
    if value is None:
        return 0
    s = value.scaleb(places)
    if s != s.to_integral_value() or s < 0 or s > dl.U32_MAX:
        raise CompileError("%s: %s cannot be stored exactly with %d decimals in 32 bits"
                           % (what, value, places))
    return int(s)


def entry_key(e):
    """(drug id, conc unit code, conc amount scaled, conc volume uL): the binary's sort key."""
    return (e["drug_id"], CONC_CODE.get(e["conc_unit"], 0),
            scaled(e["conc_amount"], dl.CONC_DECIMALS, "conc_amount"),
            scaled(e["conc_volume_ml"], dl.VOLUME_DECIMALS, "conc_volume_ml"))


def sorted_entries(area):
    return sorted(area["entries"], key=entry_key)


class _Strings:
    def __init__(self):
        self.data = bytearray()
        self.offsets = {}

    def add(self, text):
        if text in self.offsets:
            return self.offsets[text]
        raw = text.encode("utf-8")
        if len(raw) > 255:
            raise CompileError("name %r longer than 255 bytes" % text)
        off = len(self.data)
        self.data.append(len(raw))
        self.data.extend(raw)
        self.offsets[text] = off
        return off


def _ext_record(e, places):
    weight = e["weight_min_kg"] is not None
    pca = e["pca_max_bolus"] is not None
    if not weight and not pca:
        return None
    where = e.get("_where", "entry")
    flags = (dl.X_WEIGHT if weight else 0) | (dl.X_PCA if pca else 0)
    return struct.pack(
        dl.EXT_FMT,
        scaled(e["weight_min_kg"], dl.WEIGHT_DECIMALS, where + ", weight_min_kg"),
        scaled(e["weight_max_kg"], dl.WEIGHT_DECIMALS, where + ", weight_max_kg"),
        scaled(e["pca_max_bolus"], places, where + ", pca_max_bolus"),
        scaled(e["pca_max_dose_1h"], places, where + ", pca_max_dose_1h"),
        scaled(e["pca_max_dose_4h"], places, where + ", pca_max_dose_4h"),
        e["pca_min_lockout_minutes"] or 0, e["pca_max_boluses_per_h"] or 0, flags)


def _entry_record(ca_index, e, ext_index):
    where = e.get("_where", "entry")
    unit = UNIT_CODE.get(e["dose_unit"])
    if unit is None:
        raise CompileError("%s, dose_unit: %r unknown" % (where, e["dose_unit"]))
    places = dl.DOSE_UNITS[unit][1]
    flags = 0
    values = []
    for f, bit, p in (("default", dl.F_DEFAULT, places), ("soft_min", dl.F_SOFT_MIN, places),
                      ("soft_max", dl.F_SOFT_MAX, places), ("hard_min", dl.F_HARD_MIN, places),
                      ("hard_max", 0, places), ("vtbi_min_ml", dl.F_VTBI_MIN, dl.VOLUME_DECIMALS),
                      ("vtbi_max_ml", dl.F_VTBI_MAX, dl.VOLUME_DECIMALS)):
        if e[f] is not None:
            flags |= bit
        elif f == "hard_max":
            raise CompileError("%s, hard_max: missing" % where)
        values.append(scaled(e[f], p, where + ", " + f))
    if e["occlusion_mmhg"] is not None:
        flags |= dl.F_OCCLUSION
    if e["air_limit_ul"] is not None:
        flags |= dl.F_AIR
    key = entry_key(e)
    return struct.pack(dl.ENTRY_FMT, ca_index, unit, e["drug_id"], key[1], flags, ext_index,
                       key[2], key[3], *values, e["occlusion_mmhg"] or 0, e["air_limit_ul"] or 0)


def compile_model(model, key, created_s=None):
    """The signed binary of a checked model (see module doc); ``created_s`` = Unix time."""
    if len(key) != dl.KEY_SIZE:
        raise CompileError("fleet key is %d bytes, expected %d" % (len(key), dl.KEY_SIZE))
    lib = model["library"]
    for f in ("library_id", "version"):
        if lib.get(f) is None:
            raise CompileError("library %s missing" % f)
    model_name = lib.get("model") or DEFAULT_MODEL
    model_raw = model_name.encode("ascii")
    if len(model_raw) > 16:
        raise CompileError("model %r longer than 16 characters" % model_name)
    if created_s is None:
        created_s = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    areas = model["care_areas"]
    if not areas or len(areas) > 255:
        raise CompileError("%d care areas: a library holds 1 to 255" % len(areas))
    strings = _Strings()
    name_off = strings.add(lib.get("name") or "")
    ca_records = []
    entry_records = []
    ext_index = {}
    ext_records = []
    drugs = {}
    for ci, area in enumerate(areas):
        ca_name_off = strings.add(area["name"])
        first = len(entry_records)
        basic_ids = [e for e in area["entries"] if e["drug_id"] == dl.BASIC_DRUG_ID]
        if bool(basic_ids) != bool(area["basic_allowed"]):
            raise CompileError("care area %r: basic_allowed %s but %d basic entries"
                               % (area["name"], area["basic_allowed"], len(basic_ids)))
        previous = None
        for e in sorted_entries(area):
            k = entry_key(e)
            if k == previous:
                raise CompileError("care area %r: two entries with key %r" % (area["name"], k))
            previous = k
            name = dl.BASIC_NAME if e["drug_id"] == dl.BASIC_DRUG_ID else e["drug_name"]
            if drugs.setdefault(e["drug_id"], name) != name:
                raise CompileError("drug %d named both %r and %r"
                                   % (e["drug_id"], drugs[e["drug_id"]], name))
            unit = UNIT_CODE.get(e["dose_unit"])
            ext = _ext_record(e, dl.DOSE_UNITS[unit][1] if unit else 3)
            xi = dl.NO_EXT
            if ext is not None:
                xi = ext_index.get(ext)
                if xi is None:
                    xi = ext_index[ext] = len(ext_records)
                    ext_records.append(ext)
                    if xi >= dl.NO_EXT:
                        raise CompileError("more than %d distinct weight/PCA records" % dl.NO_EXT)
            entry_records.append(_entry_record(ci, e, xi))
        count = len(entry_records) - first
        if len(entry_records) > 0xFFFF:
            raise CompileError("more than %d entries" % 0xFFFF)
        ca_records.append(struct.pack(dl.CARE_AREA_FMT, ca_name_off, first, count,
                                      dl.CA_BASIC_ALLOWED if area["basic_allowed"] else 0, 0, 0))
    drug_records = [struct.pack(dl.DRUG_FMT, did, 0, strings.add(drugs[did]))
                    for did in sorted(drugs)]
    ca_off = dl.HEADER_SIZE
    drug_off = ca_off + len(ca_records) * dl.CARE_AREA_SIZE
    entry_off = drug_off + len(drug_records) * dl.DRUG_SIZE
    ext_off = entry_off + len(entry_records) * dl.ENTRY_SIZE
    string_off = ext_off + len(ext_records) * dl.EXT_SIZE
    body_size = string_off + len(strings.data)
    total = body_size + dl.CRC_SIZE + dl.TAG_SIZE
    if total > dl.MAX_LIBRARY_BYTES:
        raise CompileError("library is %d bytes, above the %d a pump slot holds"
                           % (total, dl.MAX_LIBRARY_BYTES))
    header = struct.pack(
        dl.HEADER_FMT, dl.MAGIC, dl.SCHEMA_VERSION, dl.HEADER_SIZE, body_size, model_raw,
        lib["library_id"], lib["version"], created_s, name_off, len(ca_records),
        len(drug_records), len(entry_records), len(ext_records), ca_off, drug_off, entry_off,
        ext_off, string_off, len(strings.data), dl.CARE_AREA_SIZE, dl.DRUG_SIZE,
        dl.ENTRY_SIZE, dl.EXT_SIZE)
    body = b"".join([header] + ca_records + drug_records + entry_records + ext_records
                    + [bytes(strings.data)])
    assert len(body) == body_size
    signed = body + struct.pack("<I", crc32(body))
    return signed + hmac.new(key, signed, hashlib.sha256).digest()


def write_atomically(path, data):
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
