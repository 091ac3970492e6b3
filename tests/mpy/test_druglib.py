"""Drug library on the pump (SR-LIB-2): streamed verification refuses every damaged,
foreign or unauthenticated library with a message naming the problem, and look-ups seek
to single records (binary search) instead of loading the library.  Runs under CPython and
MicroPython; the binary is tests/fixtures/library_small.bin, which
tests/test_library_fixture.py proves is what the compiler writes today.
"""
import binascii

from firmware import druglib as dl

_HERE = __file__.replace("\\", "/").rsplit("/", 1)[0] if "/" in __file__ else "."
FIXTURES = _HERE + "/../fixtures/"
MODEL = "AMB-PUMP-1"


def _read(name):
    with open(FIXTURES + name, "rb") as f:
        return f.read()


def _key():
    return binascii.unhexlify(_read("library_test.key").strip())


LIB = _read("library_small.bin")


class CountingFile:
    """An in-memory file that records how much was read and the largest single read."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.bytes_read = 0
        self.largest_read = 0

    def _take(self, n):
        n = max(0, min(n, len(self.data) - self.pos))
        self.bytes_read += n
        if n > self.largest_read:
            self.largest_read = n
        return n

    def readinto(self, buf):
        n = self._take(len(buf))
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def read(self, n=-1):
        if n is None or n < 0:
            n = len(self.data) - self.pos
        n = self._take(n)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def seek(self, off, whence=0):
        if whence == 1:
            off += self.pos
        elif whence == 2:
            off += len(self.data)
        self.pos = off
        return off

    def tell(self):
        return self.pos


def _refusal(data, key=None, model=MODEL):
    try:
        dl.verify(CountingFile(data), key or _key(), model)
    except dl.LibraryError as e:
        return str(e)
    return None


def _hex(b):
    return binascii.hexlify(b).decode()


def test_hmac_sha256_matches_rfc4231_vectors_SR_LIB_2():
    # RFC 4231 test cases 1, 2 and 6 (key longer than the 64-byte block)
    assert _hex(dl.hmac_sha256(b"\x0b" * 20, b"Hi There")) == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert _hex(dl.hmac_sha256(b"Jefe", b"what do ya want for nothing?")) == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert _hex(dl.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - "
                               b"Hash Key First")) == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    mac = dl.HmacSha256(b"Jefe")
    for part in (b"what do ya", b" want ", b"for nothing?"):
        mac.update(part)
    assert _hex(mac.digest()) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_fixture_verifies_and_header_is_read_SR_LIB_2():
    f = CountingFile(LIB)
    h = dl.verify(f, _key(), MODEL, chunk_size=64)
    assert (h.library_id, h.version, h.model, h.schema_version) == (42, 3, MODEL, 1)
    assert h.total_size == len(LIB) and f.bytes_read == len(LIB)
    assert f.largest_read <= 64           # streamed: the chunk is the only buffer
    assert (h.care_area_count, h.entry_count) == (3, 12)


def test_wrong_key_refused_SR_LIB_2():
    msg = _refusal(LIB, key=bytes(32))
    assert msg and "authentication tag mismatch" in msg, msg
    msg = _refusal(LIB, key=b"short")
    assert msg and "expected 32" in msg, msg


def test_wrong_model_refused_SR_LIB_2():
    msg = _refusal(LIB, model="AMB-PUMP-2")
    assert msg == "model 'AMB-PUMP-1' not 'AMB-PUMP-2': library is for another pump model", msg


def test_truncated_file_refused_at_every_length_SR_LIB_2():
    for n in range(len(LIB)):
        msg = _refusal(LIB[:n])
        assert msg and "truncated at byte %d" % n in msg, (n, msg)


def test_longer_file_refused_SR_LIB_2():
    msg = _refusal(LIB + b"\x00")
    assert msg and "longer than the %d bytes" % len(LIB) in msg, msg


def test_flipped_byte_anywhere_refused_SR_LIB_2():
    positions = list(range(0, 96)) + list(range(96, len(LIB) - 40, 7)) + list(
        range(len(LIB) - 40, len(LIB)))
    for pos in positions:
        for bit in (0x01, 0x80):
            bad = bytearray(LIB)
            bad[pos] ^= bit
            msg = _refusal(bytes(bad))
            assert msg, "flip of bit %02x at byte %d accepted" % (bit, pos)
            if pos < 4:
                assert "bad magic" in msg, msg
            elif len(LIB) - 36 <= pos < len(LIB) - 32:
                assert "CRC mismatch" in msg, msg
            elif pos >= len(LIB) - 32:
                assert "authentication tag mismatch" in msg, msg
            elif not 8 <= pos < 12:          # the length field may read as a truncation
                assert "CRC mismatch" in msg, (pos, msg)


def test_signed_library_of_unknown_schema_version_refused_SR_LIB_2():
    import struct
    body = bytearray(LIB[:-36])
    struct.pack_into("<H", body, 4, 2)
    body = bytes(body)
    signed = body + struct.pack("<I", dl.crc32(body))
    data = signed + dl.hmac_sha256(_key(), signed)
    msg = _refusal(data)
    assert msg == "schema version 2 unsupported: this firmware reads version 1", msg


def _open():
    return dl.open_verified(CountingFile(LIB), _key(), MODEL)


def test_care_areas_and_names():
    lib = _open()
    assert lib.name == "Test fixture library"
    names = [lib.care_area(i).name for i in range(lib.care_area_count)]
    assert names == ["Adult home", "Inotropes", "Mixed units"]
    assert lib.care_area_index("Inotropes") == 1 and lib.care_area_index("ICU") == -1
    assert lib.drug_name(101) == "Vancomycin" and lib.drug_name(999) is None
    assert lib.drug_name(dl.BASIC_DRUG_ID) == dl.BASIC_NAME


def test_every_entry_is_found_by_binary_search():
    lib = _open()
    for ci in range(lib.care_area_count):
        area = lib.care_area(ci)
        previous = None
        for i in range(area.first_entry, area.first_entry + area.entry_count):
            e = lib.entry(i)
            assert e.care_area == ci
            assert previous is None or previous < e.key()       # sorted, unique
            previous = e.key()
            found = lib.find(ci, e.drug_id, e.conc_unit, e.conc_amount, e.conc_volume_ul)
            assert found is not None and found.index == i


def test_lookup_values_are_exact_scaled_integers_SR_TH_3():
    lib = _open()
    mg = dl.conc_unit_code("mg")
    vanco = lib.find(0, 101, mg, 5000, 1000)                  # 5 mg/mL
    assert vanco.unit_text() == "mg/h" and vanco.decimals() == 3
    assert (vanco.default, vanco.soft_min, vanco.soft_max, vanco.hard_min, vanco.hard_max) == (
        500000, 40000, 500000, 20000, 600000)
    assert vanco.vtbi_min_ul is None and vanco.vtbi_max_ul == 500000
    assert vanco.pca is None and vanco.weight_min_g is None
    assert vanco.occlusion_mmhg is None and vanco.air_limit_ul is None
    epo = lib.find(1, 703, mg, 15, 1000)                      # 0.015 mg/mL
    assert epo.unit_text() == "mcg/kg/min" and epo.default == 200      # 0.002 at 5 decimals
    assert (epo.weight_min_g, epo.weight_max_g) == (2500, 150000)
    assert dl.format_scaled(epo.default, epo.decimals()) == "0.002"
    morphine = lib.find(0, 401, mg, 1000, 1000)
    assert morphine.pca == (2000, 6, 6, 10000, 30000)
    assert (morphine.occlusion_mmhg, morphine.air_limit_ul) == (310, 50)
    assert lib.find(0, 401, mg, 2000, 1000) is None          # no 2 mg/mL entry
    assert lib.find(1, 101, mg, 5000, 1000) is None          # not in that care area


def test_basic_infusion_allowed_or_forbidden_per_care_area_SR_TH_4():
    lib = _open()
    basic = lib.basic(0)
    assert basic is not None and basic.unit_text() == "mL/h"
    assert (basic.default, basic.hard_min, basic.hard_max) == (100000, 100, 500000)
    assert lib.basic(1) is None and lib.basic(2) is None


def test_drug_range_lists_a_drugs_concentrations():
    lib = _open()
    first, count = lib.drug_range(0, 101)
    assert count == 2
    assert [lib.entry(i).drug_id for i in range(first, first + count)] == [101, 101]
    assert lib.drug_range(0, 102)[1] == 0


def test_lookup_reads_a_few_records_not_the_library():
    f = CountingFile(LIB)
    lib = dl.Library(f)
    f.bytes_read = 0
    f.largest_read = 0
    e = lib.find(2, 602, dl.conc_unit_code("mmol"), 20000, 1000000)
    assert e is not None and e.unit_text() == "mmol/h"
    assert f.largest_read <= dl.ENTRY_SIZE
    # care-area record + binary search over 3 keys + the record (no extension): ~108 B
    assert f.bytes_read <= dl.CARE_AREA_SIZE + 4 * dl.ENTRY_KEY_SIZE + dl.ENTRY_SIZE, f.bytes_read


def test_format_scaled_is_exact():
    assert dl.format_scaled(1250, 3) == "1.25"
    assert dl.format_scaled(5, 5) == "0.00005"
    assert dl.format_scaled(600000, 3) == "600"
    assert dl.format_scaled(0, 3) == "0"
    assert dl.format_scaled(None, 3) == "-"
