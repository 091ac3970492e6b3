"""Drug library on the pump (SR-LIB-2, SR-TH-3): verify a compiled library and look entries up.

Owns the device side of the binary format described byte by byte in
``docs/DRUG_LIBRARY.md``: the unit tables (codes, text, decimal scale), the
record layouts, streamed verification (CRC-32 and HMAC-SHA256 with the
provisioned fleet key, in fixed-size chunks) and look-ups that seek to the
records they need (binary search over the sorted entry table), so the library
is never held whole on the heap.  The host compiler (``host_tools/library``)
imports these tables and formats, so both sides share one definition.

MicroPython has ``hashlib.sha256`` but no ``hmac`` module: HMAC-SHA256
(RFC 2104) is implemented over ``hashlib`` in ``firmware/mac.py`` (shared with
the service link) and re-exported here.  Portable: MicroPython and
CPython.  Numbers are scaled integers; there is no float anywhere.
"""
import struct

from firmware.crc import crc32
from firmware.mac import HmacSha256, equal_digest, hmac_sha256  # noqa: F401  (re-exported)

MAGIC = b"IPDL"
SCHEMA_VERSION = 1
MAX_LIBRARY_BYTES = 512 * 1024      # one library slot on the pump's flash
CRC_SIZE = 4
TAG_SIZE = 32
KEY_SIZE = 32

# Bytes 0..11 are the same in every schema version, so any library can be
# checked (CRC, tag) before its version-specific layout is trusted.
PREAMBLE_FMT = "<4sHHI"             # magic, schema_version, header_size, body_size
PREAMBLE_SIZE = 12
HEADER_FMT = "<4sHHI16sIIIIHHHHIIIIIIBBBB"
HEADER_SIZE = 80
CARE_AREA_FMT = "<IHHBBH"           # name_off, first_entry, entry_count, flags, 0, 0
CARE_AREA_SIZE = 12
DRUG_FMT = "<HHI"                   # drug_id, 0, name_off
DRUG_SIZE = 8
ENTRY_FMT = "<BBHBBHIIIIIIIIIHH"
ENTRY_SIZE = 48
ENTRY_KEY_FMT = "<BBHBBHII"         # the first 16 bytes: the sort key lives there
ENTRY_KEY_SIZE = 16
EXT_FMT = "<IIIIIHBB"
EXT_SIZE = 24
NO_EXT = 0xFFFF
U32_MAX = 0xFFFFFFFF

# care-area flags
CA_BASIC_ALLOWED = 0x01
# entry flags: which optional fields are set (hard_max is always set)
F_DEFAULT = 0x01
F_SOFT_MIN = 0x02
F_SOFT_MAX = 0x04
F_HARD_MIN = 0x08
F_VTBI_MIN = 0x10
F_VTBI_MAX = 0x20
F_OCCLUSION = 0x40
F_AIR = 0x80
# extension flags
X_WEIGHT = 0x01
X_PCA = 0x02

BASIC_DRUG_ID = 0                   # the care area's basic (no-drug) infusion
BASIC_NAME = "Basic infusion"

# Dose units (SR-TH-3), by code: (text, decimals stored, amount unit, per kg, seconds per
# time unit).  A value v in the unit is stored as the integer v * 10**decimals.
DOSE_UNITS = (
    None,
    ("mL/h", 3, "mL", False, 3600),
    ("mg/h", 3, "mg", False, 3600),
    ("mcg/h", 3, "mcg", False, 3600),
    ("mcg/kg/min", 5, "mcg", True, 60),
    ("mg/kg/h", 4, "mg", True, 3600),
    ("units/h", 3, "units", False, 3600),
    ("mmol/h", 3, "mmol", False, 3600),
)
# Concentration amount units, by code: (text, quantity, factor to the quantity's base unit).
# Amounts are stored in thousandths of the unit.
CONC_UNITS = (
    None,
    ("g", "mass", 1000000),
    ("mg", "mass", 1000),
    ("mcg", "mass", 1),
    ("units", "units", 1),
    ("mmol", "mmol", 1),
)
# the dose's amount unit -> (quantity, factor to base); "mL" is volume
AMOUNT_UNITS = {"mL": ("volume", 1), "mg": ("mass", 1000), "mcg": ("mass", 1),
                "units": ("units", 1), "mmol": ("mmol", 1)}
CONC_DECIMALS = 3                   # concentration amount: thousandths of its unit
VOLUME_DECIMALS = 3                 # mL stored as uL (concentration volume, VTBI)
WEIGHT_DECIMALS = 3                 # kg stored as g


class LibraryError(Exception):
    """A library the pump must refuse; the message names the problem."""


def dose_unit_code(text):
    for code in range(1, len(DOSE_UNITS)):
        if DOSE_UNITS[code][0] == text:
            return code
    return 0


def conc_unit_code(text):
    for code in range(1, len(CONC_UNITS)):
        if CONC_UNITS[code][0] == text:
            return code
    return 0


def format_scaled(value, decimals):
    """Exact text of a scaled integer: (1250, 3) -> '1.25'; None -> '-'."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    digits = str(-value if value < 0 else value)
    if decimals == 0:
        return sign + digits
    if len(digits) <= decimals:
        digits = "0" * (decimals - len(digits) + 1) + digits
    whole = digits[:-decimals]
    frac = digits[-decimals:]
    while frac and frac[-1] == "0":
        frac = frac[:-1]
    return sign + whole + ("." + frac if frac else "")


# ---- header -----------------------------------------------------------------------------

class Header:
    """The fixed 80-byte header of a schema-1 library, with its layout checked."""

    def __init__(self, raw):
        if len(raw) < HEADER_SIZE:
            raise LibraryError("header is %d bytes, expected %d" % (len(raw), HEADER_SIZE))
        (magic, self.schema_version, self.header_size, self.body_size, model,
         self.library_id, self.version, self.created_s, self.name_off,
         self.care_area_count, self.drug_count, self.entry_count, self.ext_count,
         self.care_area_off, self.drug_off, self.entry_off, self.ext_off,
         self.string_off, self.string_size, ca_size, drug_size, entry_size,
         ext_size) = struct.unpack_from(HEADER_FMT, raw, 0)
        if magic != MAGIC:
            raise LibraryError("bad magic %r: not a drug library" % (bytes(magic),))
        if self.schema_version != SCHEMA_VERSION:
            raise LibraryError("schema version %d unsupported: this firmware reads version %d"
                               % (self.schema_version, SCHEMA_VERSION))
        n = 0
        while n < 16 and model[n] != 0:
            n += 1
        try:
            self.model = bytes(model[:n]).decode()
        except UnicodeError:
            raise LibraryError("model field is not text")
        self.total_size = self.body_size + CRC_SIZE + TAG_SIZE
        self._check_layout(ca_size, drug_size, entry_size, ext_size)

    def _check_layout(self, ca_size, drug_size, entry_size, ext_size):
        if self.header_size != HEADER_SIZE:
            raise LibraryError("header is %d bytes, this firmware reads %d"
                               % (self.header_size, HEADER_SIZE))
        sizes = (("care-area", ca_size, CARE_AREA_SIZE), ("drug", drug_size, DRUG_SIZE),
                 ("entry", entry_size, ENTRY_SIZE), ("extension", ext_size, EXT_SIZE))
        for what, got, want in sizes:
            if got != want:
                raise LibraryError("%s records are %d bytes, this firmware reads %d"
                                   % (what, got, want))
        tables = (("care-area table", self.care_area_off, self.care_area_count * CARE_AREA_SIZE),
                  ("drug table", self.drug_off, self.drug_count * DRUG_SIZE),
                  ("entry table", self.entry_off, self.entry_count * ENTRY_SIZE),
                  ("extension table", self.ext_off, self.ext_count * EXT_SIZE),
                  ("string table", self.string_off, self.string_size))
        for what, off, size in tables:
            if off < HEADER_SIZE or off + size > self.body_size:
                raise LibraryError("%s at byte %d (+%d) outside the library body (%d..%d)"
                                   % (what, off, size, HEADER_SIZE, self.body_size))
        if self.care_area_count == 0:
            raise LibraryError("library has no care areas")


# ---- verification ------------------------------------------------------------------------

def _fill(f, view, pos, total):
    """Read exactly len(view) bytes into view; raise 'truncated' on early end of file."""
    want = len(view)
    got = 0
    while got < want:
        n = f.readinto(view[got:] if got else view)
        if not n:
            raise LibraryError("truncated at byte %d: the header declares %d bytes"
                               % (pos + got, total))
        got += n


def verify(f, key, expected_model, chunk_size=512):
    """Stream a library file through CRC-32 and HMAC-SHA256; return its Header.

    Raises LibraryError naming the problem: bad magic, truncated at byte N, longer
    than declared, CRC mismatch, authentication tag mismatch, schema version N
    unsupported, bad layout, model X not Y.  ``f`` is read from its current
    position to the end, ``chunk_size`` bytes at a time (the only buffer).
    ``expected_model`` None skips the model check (host tools only).
    """
    if len(key) != KEY_SIZE:
        raise LibraryError("fleet key is %d bytes, expected %d" % (len(key), KEY_SIZE))
    pre = bytearray(PREAMBLE_SIZE)
    pre_view = memoryview(pre)
    got = 0
    while got < PREAMBLE_SIZE:
        n = f.readinto(pre_view[got:])
        if not n:
            raise LibraryError("truncated at byte %d: a library starts with a %d-byte header"
                               % (got, HEADER_SIZE))
        got += n
    magic, schema_version, header_size, body_size = struct.unpack_from(PREAMBLE_FMT, pre, 0)
    if magic != MAGIC:
        raise LibraryError("bad magic %r: not a drug library" % (bytes(magic),))
    if body_size < HEADER_SIZE or body_size + CRC_SIZE + TAG_SIZE > MAX_LIBRARY_BYTES:
        raise LibraryError("length field says %d bytes: outside %d..%d"
                           % (body_size + CRC_SIZE + TAG_SIZE, HEADER_SIZE + CRC_SIZE
                              + TAG_SIZE, MAX_LIBRARY_BYTES))
    total = body_size + CRC_SIZE + TAG_SIZE
    mac = HmacSha256(key)
    crc = crc32(pre)
    mac.update(pre)
    header = bytearray(HEADER_SIZE)
    header[0:PREAMBLE_SIZE] = pre
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    pos = PREAMBLE_SIZE
    while pos < body_size:
        n = body_size - pos
        part = view if n >= chunk_size else view[:n]
        n = len(part)
        _fill(f, part, pos, total)
        if pos < HEADER_SIZE:
            k = min(n, HEADER_SIZE - pos)
            header[pos:pos + k] = part[:k]
        crc = crc32(part, crc)
        mac.update(part)
        pos += n
    stored = view[:CRC_SIZE]
    _fill(f, stored, pos, total)
    mac.update(stored)
    stored_crc = struct.unpack_from("<I", buf, 0)[0]
    tag = view[:TAG_SIZE]
    _fill(f, tag, pos + CRC_SIZE, total)
    if f.read(1):
        raise LibraryError("longer than the %d bytes its header declares" % total)
    if stored_crc != crc:
        raise LibraryError("CRC mismatch: stored 0x%08x, computed 0x%08x: the library is damaged"
                           % (stored_crc, crc))
    if not equal_digest(mac.digest(), tag):
        raise LibraryError("authentication tag mismatch: not signed with this pump's fleet key,"
                           " or altered")
    if schema_version != SCHEMA_VERSION:
        raise LibraryError("schema version %d unsupported: this firmware reads version %d"
                           % (schema_version, SCHEMA_VERSION))
    h = Header(header)
    if expected_model is not None and h.model != expected_model:
        raise LibraryError("model %r not %r: library is for another pump model"
                           % (h.model, expected_model))
    return h


# ---- look-ups ----------------------------------------------------------------------------

class CareArea:
    """One care area (profile): name, its slice of the entry table, basic infusion allowed."""

    def __init__(self, index, name, first_entry, entry_count, basic_allowed):
        self.index = index
        self.name = name
        self.first_entry = first_entry
        self.entry_count = entry_count
        self.basic_allowed = basic_allowed


class Entry:
    """One care area x drug x concentration record.

    Dose values (default, soft_min, soft_max, hard_min, hard_max) are in the entry's
    dose unit times 10**DOSE_UNITS[dose_unit][1]; None where the library leaves them
    unset.  conc_amount is in thousandths of CONC_UNITS[conc_unit] (0/0 = none).
    pca is None or (max_bolus, min_lockout_minutes, max_boluses_per_h, max_dose_1h,
    max_dose_4h), amounts in the dose's amount unit scaled like the dose.
    """

    def __init__(self, index, raw, ext):
        (self.care_area, self.dose_unit, self.drug_id, self.conc_unit, flags, ext_index,
         self.conc_amount, self.conc_volume_ul, default, soft_min, soft_max, hard_min,
         self.hard_max, vtbi_min_ul, vtbi_max_ul, occlusion_mmhg,
         air_limit_ul) = struct.unpack_from(ENTRY_FMT, raw, 0)
        self.index = index
        self.flags = flags
        self.default = default if flags & F_DEFAULT else None
        self.soft_min = soft_min if flags & F_SOFT_MIN else None
        self.soft_max = soft_max if flags & F_SOFT_MAX else None
        self.hard_min = hard_min if flags & F_HARD_MIN else None
        self.vtbi_min_ul = vtbi_min_ul if flags & F_VTBI_MIN else None
        self.vtbi_max_ul = vtbi_max_ul if flags & F_VTBI_MAX else None
        self.occlusion_mmhg = occlusion_mmhg if flags & F_OCCLUSION else None
        self.air_limit_ul = air_limit_ul if flags & F_AIR else None
        self.weight_min_g = None
        self.weight_max_g = None
        self.pca = None
        if ext is not None:
            (w_min, w_max, bolus, dose_1h, dose_4h, lockout_min, per_h,
             xflags) = struct.unpack_from(EXT_FMT, ext, 0)
            if xflags & X_WEIGHT:
                self.weight_min_g = w_min
                self.weight_max_g = w_max
            if xflags & X_PCA:
                self.pca = (bolus, lockout_min, per_h, dose_1h, dose_4h)

    def key(self):
        return (self.drug_id, self.conc_unit, self.conc_amount, self.conc_volume_ul)

    def unit_text(self):
        return DOSE_UNITS[self.dose_unit][0]

    def decimals(self):
        return DOSE_UNITS[self.dose_unit][1]


class Library:
    """A library file opened for look-ups; reads only the records it needs.

    Open a library that ``verify`` accepted (``open_verified`` does both).  The
    header's layout is checked again here, and every index read from a record is
    bounds-checked, so a bad file raises LibraryError rather than misreading.
    """

    def __init__(self, f):
        self.f = f
        f.seek(0)
        raw = bytearray(HEADER_SIZE)
        view = memoryview(raw)
        _fill(f, view, 0, HEADER_SIZE)
        self.header = h = Header(raw)
        self.library_id = h.library_id
        self.version = h.version
        self.model = h.model
        self.created_s = h.created_s
        self.care_area_count = h.care_area_count
        self.drug_count = h.drug_count
        self.entry_count = h.entry_count
        self._buf = bytearray(ENTRY_SIZE)
        self._view = memoryview(self._buf)
        self._ext = bytearray(EXT_SIZE)
        self.name = self._string(h.name_off)

    def _read(self, off, n):
        view = self._view[:n]
        self.f.seek(off)
        _fill(self.f, view, off, self.header.total_size)
        return self._buf

    def _string(self, name_off):
        h = self.header
        if name_off >= h.string_size:
            raise LibraryError("string offset %d outside the string table (%d bytes)"
                               % (name_off, h.string_size))
        n = self._read(h.string_off + name_off, 1)[0]
        if name_off + 1 + n > h.string_size:
            raise LibraryError("string at %d runs past the string table" % name_off)
        out = bytearray(n)
        self.f.seek(h.string_off + name_off + 1)
        _fill(self.f, memoryview(out), h.string_off + name_off + 1, h.total_size)
        return bytes(out).decode()

    def _area(self, index):
        """(name_off, first_entry, entry_count, flags) of a care area, bounds-checked."""
        h = self.header
        if not 0 <= index < h.care_area_count:
            raise LibraryError("care area %d not in 0..%d" % (index, h.care_area_count - 1))
        buf = self._read(h.care_area_off + index * CARE_AREA_SIZE, CARE_AREA_SIZE)
        name_off, first, count, flags, _, _ = struct.unpack_from(CARE_AREA_FMT, buf, 0)
        if first + count > h.entry_count:
            raise LibraryError("care area %d: entries %d..%d outside the entry table (%d)"
                               % (index, first, first + count, h.entry_count))
        return name_off, first, count, flags

    def care_area(self, index):
        name_off, first, count, flags = self._area(index)
        return CareArea(index, self._string(name_off), first, count,
                        bool(flags & CA_BASIC_ALLOWED))

    def care_area_index(self, name):
        """Index of the care area called ``name``, or -1."""
        for i in range(self.header.care_area_count):
            if self.care_area(i).name == name:
                return i
        return -1

    def drug_name(self, drug_id):
        """Name of ``drug_id`` (binary search in the drug table), or None."""
        h = self.header
        lo = 0
        hi = h.drug_count
        while lo < hi:
            mid = (lo + hi) // 2
            buf = self._read(h.drug_off + mid * DRUG_SIZE, DRUG_SIZE)
            did, _, name_off = struct.unpack_from(DRUG_FMT, buf, 0)
            if did == drug_id:
                return self._string(name_off)
            if did < drug_id:
                lo = mid + 1
            else:
                hi = mid
        return None

    def entry(self, index):
        h = self.header
        if not 0 <= index < h.entry_count:
            raise LibraryError("entry %d not in 0..%d" % (index, h.entry_count - 1))
        raw = bytes(self._read(h.entry_off + index * ENTRY_SIZE, ENTRY_SIZE))
        ext_index = struct.unpack_from("<H", raw, 6)[0]
        ext = None
        if ext_index != NO_EXT:
            if ext_index >= h.ext_count:
                raise LibraryError("entry %d: extension %d not in the table (%d)"
                                   % (index, ext_index, h.ext_count))
            self.f.seek(h.ext_off + ext_index * EXT_SIZE)
            _fill(self.f, memoryview(self._ext), h.ext_off + ext_index * EXT_SIZE,
                  h.total_size)
            ext = self._ext
        return Entry(index, raw, ext)

    def _key_at(self, index):
        buf = self._read(self.header.entry_off + index * ENTRY_SIZE, ENTRY_KEY_SIZE)
        _, _, drug_id, conc_unit, _, _, amount, volume_ul = struct.unpack_from(
            ENTRY_KEY_FMT, buf, 0)
        return (drug_id, conc_unit, amount, volume_ul)

    def _lower_bound(self, first, count, key):
        lo = first
        hi = first + count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._key_at(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, care_area, drug_id, conc_unit=0, conc_amount=0, conc_volume_ul=0):
        """The entry for care area index x drug x concentration, or None (binary search)."""
        _, first, count, _ = self._area(care_area)
        key = (drug_id, conc_unit, conc_amount, conc_volume_ul)
        i = self._lower_bound(first, count, key)
        if i < first + count and self._key_at(i) == key:
            return self.entry(i)
        return None

    def drug_range(self, care_area, drug_id):
        """(first, count): the entry indices of ``drug_id``'s concentrations in a care area."""
        _, first, count, _ = self._area(care_area)
        lo = self._lower_bound(first, count, (drug_id, 0, 0, 0))
        hi = self._lower_bound(first, count, (drug_id + 1, 0, 0, 0))
        return lo, hi - lo

    def basic(self, care_area):
        """The care area's basic (no-drug) infusion limits, or None when it is forbidden."""
        if not self._area(care_area)[3] & CA_BASIC_ALLOWED:
            return None
        return self.find(care_area, BASIC_DRUG_ID)


def open_verified(f, key, expected_model, chunk_size=512):
    """verify() the whole file, then open it for look-ups."""
    f.seek(0)
    verify(f, key, expected_model, chunk_size)
    return Library(f)
