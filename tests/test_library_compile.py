"""Compiled drug library (SR-LIB-2, PT-7): the documented byte layout, source -> binary ->
decoded table is an exact round trip (hypothesis), HMAC-SHA256 on the pump equals CPython's
hmac, and damaged, foreign or unauthenticated binaries are refused with a clear message.
"""
import hashlib
import hmac
import io
import os
import struct
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import druglib as dl
from firmware.crc import crc32
from host_tools.library import check as ck
from host_tools.library import compiler as cp
from host_tools.library import show as sh
from host_tools.library import source as sm
from tests.bench.pt7_library import generate_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "libraries", "sample_home_infusion.csv")
KEY = hashlib.sha256(b"test_library_compile").digest()
CREATED_S = 1767225600


def compiled_sample(key=KEY, **identity):
    ids = {"library_id": 9, "version": 4}
    ids.update(identity)
    model, problems = ck.check_file(SAMPLE, ids)
    assert not ck.errors(problems)
    return model, cp.compile_model(model, key, created_s=CREATED_S)


def sorted_content(model):
    c = sm.content(model)
    for area in c["care_areas"]:
        area["entries"].sort(key=cp.entry_key)
    return c


# ---- layout ---------------------------------------------------------------------------------

def test_header_fields_at_documented_offsets_SR_LIB_2():
    model, data = compiled_sample()
    assert data[0:4] == b"IPDL"
    schema_version, header_size, body_size = struct.unpack_from("<HHI", data, 4)
    assert (schema_version, header_size, body_size) == (1, 80, len(data) - 36)
    assert data[12:28].rstrip(b"\x00") == b"AMB-PUMP-1"
    library_id, version, created_s = struct.unpack_from("<III", data, 28)
    assert (library_id, version, created_s) == (9, 4, CREATED_S)
    ca_n, drug_n, entry_n, ext_n = struct.unpack_from("<HHHH", data, 44)
    assert ca_n == len(model["care_areas"])
    assert entry_n == sum(len(a["entries"]) for a in model["care_areas"])
    offs = struct.unpack_from("<IIIIII", data, 52)
    ca_off, drug_off, entry_off, ext_off, string_off, string_size = offs
    assert ca_off == 80 and drug_off == ca_off + 12 * ca_n
    assert entry_off == drug_off + 8 * drug_n and ext_off == entry_off + 48 * entry_n
    assert string_off == ext_off + 24 * ext_n and string_off + string_size == body_size
    assert tuple(data[76:80]) == (12, 8, 48, 24)
    crc, = struct.unpack_from("<I", data, body_size)
    assert crc == crc32(data[:body_size])
    assert data[-32:] == hmac.new(KEY, data[:-32], hashlib.sha256).digest()


def test_entries_sorted_by_care_area_drug_and_concentration_SR_LIB_2():
    _, data = compiled_sample()
    lib = dl.Library(io.BytesIO(data))
    keys = [(lib.entry(i).care_area,) + lib.entry(i).key() for i in range(lib.entry_count)]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_compile_is_deterministic_and_stamps_identity_SR_LIB_2():
    _, a = compiled_sample()
    _, b = compiled_sample()
    assert a == b
    _, c = compiled_sample(version=5)
    assert c != a and dl.Library(io.BytesIO(c)).version == 5


def test_sample_binary_is_small_SR_LIB_2():
    _, data = compiled_sample()
    assert len(data) < 2500          # 24 records + names + header + CRC + tag


# ---- exact round trip ------------------------------------------------------------------------

UNITS = [u[0] for u in dl.DOSE_UNITS if u]
CONC_FOR_QUANTITY = {"mass": ["g", "mg", "mcg"], "units": ["units"], "mmol": ["mmol"]}


def _dec(n, places):
    return Decimal(n).scaleb(-places)


@st.composite
def entry_st(draw, drug_id):
    unit = draw(st.sampled_from(UNITS))
    text, places, amount, per_kg, _ = [u for u in dl.DOSE_UNITS if u and u[0] == unit][0]
    e = sm.empty_entry()
    e.update(drug_id=drug_id, drug_name="Drug %d" % drug_id, dose_unit=unit)
    if unit == "mL/h":
        lo, hi = 100, 500000                 # 0.1 .. 500 mL/h in uL/h
    else:
        lo, hi = 1, dl.U32_MAX
    hard_max = draw(st.integers(max(lo, 1), hi))
    hard_min = draw(st.none() | st.integers(lo, hard_max))
    floor = hard_min if hard_min is not None else lo
    soft_min = draw(st.none() | st.integers(floor, hard_max))
    soft_max = draw(st.none() | st.integers(soft_min if soft_min is not None else floor,
                                            hard_max))
    low = soft_min if soft_min is not None else floor
    high = soft_max if soft_max is not None else hard_max
    default = draw(st.none() | st.integers(low, high))
    if unit == "mL/h" and default is not None:
        default = default - default % 100
        if default < low:
            default = None
    e.update(hard_max=_dec(hard_max, places), hard_min=_dec(hard_min, places)
             if hard_min is not None else None,
             soft_min=_dec(soft_min, places) if soft_min is not None else None,
             soft_max=_dec(soft_max, places) if soft_max is not None else None,
             default=_dec(default, places) if default is not None else None)
    if unit != "mL/h" or draw(st.booleans()):
        quantity = dl.AMOUNT_UNITS[amount][0] if unit != "mL/h" else draw(
            st.sampled_from(sorted(CONC_FOR_QUANTITY)))
        e.update(conc_unit=draw(st.sampled_from(CONC_FOR_QUANTITY[quantity])),
                 conc_amount=_dec(draw(st.integers(1, dl.U32_MAX)), 3),
                 conc_volume_ml=_dec(draw(st.integers(1, 9999000)), 3))
    if per_kg:
        w_min = draw(st.integers(100, 500000))
        e.update(weight_min_kg=_dec(w_min, 3),
                 weight_max_kg=_dec(draw(st.integers(w_min, 500000)), 3))
    elif draw(st.booleans()):
        bolus = draw(st.integers(1, 10 ** 6))
        one_h = draw(st.integers(bolus, 10 ** 7))
        e.update(pca_max_bolus=_dec(bolus, places), pca_max_dose_1h=_dec(one_h, places),
                 pca_max_dose_4h=_dec(draw(st.integers(one_h, 10 ** 8)), places),
                 pca_min_lockout_minutes=draw(st.integers(1, 1440)),
                 pca_max_boluses_per_h=draw(st.integers(1, 60)))
    v_min = draw(st.none() | st.integers(100, 9999000))
    v_max = draw(st.none() | st.integers(v_min or 100, 9999000))
    e.update(vtbi_min_ml=_dec(v_min, 3) if v_min is not None else None,
             vtbi_max_ml=_dec(v_max, 3) if v_max is not None else None,
             occlusion_mmhg=draw(st.none() | st.integers(104, 1034)),
             air_limit_ul=draw(st.none() | st.integers(50, 500)))
    return e


@st.composite
def model_st(draw):
    areas = []
    for a in range(draw(st.integers(1, 4))):
        entries = []
        if draw(st.booleans()):
            b = sm.empty_entry()
            b.update(drug_id=0, drug_name=dl.BASIC_NAME, dose_unit="mL/h",
                     hard_max=_dec(draw(st.integers(100, 500000)), 3))
            entries.append(b)
        seen = set()
        for drug_id in draw(st.lists(st.integers(1, 65535), max_size=6, unique=True)):
            for _ in range(draw(st.integers(1, 2))):
                e = draw(entry_st(drug_id))
                k = (drug_id, ck.concentration_key(e))
                if k not in seen:
                    seen.add(k)
                    entries.append(e)
        areas.append({"name": "Area %d" % a, "basic_allowed": bool(entries and
                                                                    entries[0]["drug_id"] == 0),
                      "entries": entries})
    return {"library": {"library_id": draw(st.integers(1, dl.U32_MAX)),
                        "version": draw(st.integers(1, dl.U32_MAX)),
                        "name": "Generated", "model": "AMB-PUMP-1"},
            "care_areas": areas}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_st(), st.sampled_from(["csv", "json"]))
def test_source_to_binary_to_table_is_an_exact_round_trip_SR_LIB_1_SR_LIB_2(model, kind):
    text = sm.to_csv(model) if kind == "csv" else sm.to_json(model)
    identity = model["library"] if kind == "csv" else None      # CSV carries no identity
    checked, problems = ck.check_source(sm.loads(text, kind, overrides=identity))
    assert not ck.errors(problems), [str(p) for p in ck.errors(problems)]
    assert sm.content(checked) == sm.content(model)          # source text is exact
    data = cp.compile_model(checked, KEY, created_s=CREATED_S)
    _, decoded = sh.decode_file(io.BytesIO(data), KEY, "AMB-PUMP-1")
    assert sorted_content(decoded) == sorted_content(checked)


def test_sample_round_trip_and_shown_csv_is_an_equivalent_source_SR_LIB_2():
    model, data = compiled_sample()
    _, decoded = sh.decode_file(io.BytesIO(data), KEY)
    assert sorted_content(decoded)["care_areas"] == sorted_content(model)["care_areas"]
    again, problems = ck.check_source(sm.loads(sm.to_csv(decoded), "csv"))
    assert problems == [] and sorted_content(again)["care_areas"] == sorted_content(
        model)["care_areas"]


def test_value_that_does_not_fit_exactly_is_refused_not_rounded_SR_LIB_2():
    model, _ = compiled_sample()
    model["care_areas"][0]["entries"][1]["hard_max"] = Decimal("600.0004")
    with pytest.raises(cp.CompileError, match="600.0004 cannot be stored exactly"):
        cp.compile_model(model, KEY, created_s=CREATED_S)


# ---- HMAC on the pump == CPython hmac ---------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=3000), st.integers(1, 700))
def test_pump_hmac_sha256_equals_cpython_hmac_SR_LIB_2(key, data, chunk):
    mac = dl.HmacSha256(key)
    for i in range(0, len(data), chunk):
        mac.update(data[i:i + chunk])
    assert mac.digest() == hmac.new(key, data, hashlib.sha256).digest()
    assert dl.hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).digest()


# ---- refusals ---------------------------------------------------------------------------------

def _refused(data, key=KEY, model="AMB-PUMP-1"):
    with pytest.raises(sh.ShowError) as info:
        sh.decode_file(io.BytesIO(data), key, model)
    return str(info.value)


def test_flipped_byte_at_sampled_positions_refused_SR_LIB_2():
    _, data = compiled_sample()
    positions = sorted(set(range(0, 80)) | set(range(80, len(data), 11))
                       | set(range(len(data) - 40, len(data))))
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x10
        msg = _refused(bytes(bad))
        if pos < 4:
            assert "bad magic" in msg
        elif pos >= len(data) - 32:
            assert msg.startswith("authentication tag mismatch"), msg
        elif not 8 <= pos < 12:
            assert msg.startswith("CRC mismatch"), (pos, msg)


def test_wrong_key_wrong_model_truncation_refused_SR_LIB_2():
    _, data = compiled_sample()
    assert _refused(data, key=bytes(32)).startswith("authentication tag mismatch")
    assert _refused(data, model="AMB-PUMP-9") == (
        "model 'AMB-PUMP-1' not 'AMB-PUMP-9': library is for another pump model")
    for n in (0, 3, 11, 79, 80, len(data) // 2, len(data) - 33, len(data) - 1):
        assert "truncated at byte %d" % n in _refused(data[:n])
    assert "longer than the" in _refused(data + b"x")
    assert "bad magic" in _refused(b"PK\x03\x04" + data[4:])


def test_signed_but_inconsistent_layout_refused_SR_LIB_2():
    """A correctly signed file whose tables overlap the end is still refused."""
    _, data = compiled_sample()
    body = bytearray(data[:-36])
    struct.pack_into("<H", body, 48, 60000)           # entry_count far beyond the body
    body = bytes(body)
    signed = body + struct.pack("<I", crc32(body))
    msg = _refused(signed + hmac.new(KEY, signed, hashlib.sha256).digest())
    assert msg.startswith("entry table at byte"), msg


# ---- key files ---------------------------------------------------------------------------------

def test_key_file_raw_or_hex_and_refusals(tmp_path):
    raw = tmp_path / "raw.key"
    raw.write_bytes(KEY)
    os.chmod(raw, 0o600)
    assert cp.load_key(str(raw)) == (KEY, [])
    hexed = tmp_path / "hex.key"
    hexed.write_text(KEY.hex() + "\n")
    os.chmod(hexed, 0o644)
    key, warnings = cp.load_key(str(hexed))
    assert key == KEY and "readable by other users" in warnings[0]
    short = tmp_path / "short.key"
    short.write_bytes(b"0123")
    with pytest.raises(cp.KeyFileError, match="4 bytes; a fleet key is 32 raw bytes or 64 hex"):
        cp.load_key(str(short))
    with pytest.raises(cp.KeyFileError, match="No such file"):
        cp.load_key(str(tmp_path / "none.key"))


def test_default_model_is_the_firmware_model():
    from firmware.service import MODEL
    assert cp.DEFAULT_MODEL == MODEL


# ---- PT-7 size ---------------------------------------------------------------------------------

def test_thirty_care_areas_three_thousand_entries_fit_in_170_kb_PT_7():
    """PT-7: 30 care areas x 3,000 entries compile to <= 170 KB (so <= 15 s at 115,200 baud)."""
    model = generate_model()
    checked, problems = ck.check_source(sm.loads(sm.to_csv(model), "csv",
                                                 overrides=model["library"]))
    assert not ck.errors(problems)
    data = cp.compile_model(checked, KEY, created_s=CREATED_S)
    assert len(data) <= 170000
    assert len(data) * 10 / 115200.0 <= 15.0
    lib = dl.open_verified(io.BytesIO(data), KEY, "AMB-PUMP-1")
    assert lib.care_area_count == 30 and lib.entry_count >= 3000
