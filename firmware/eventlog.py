"""Event log (SR-LOG-1..3, first slice): fixed-size binary records with CRC-32.

Owns the on-flash record format and append/read/recovery through the Storage
HAL.  Record, 32 bytes little-endian:

    0  u16 magic 0xE71A     2  u8 format version (1)   3  u8 event type
    4  u32 sequence number  8  u32 RTC seconds         12 u32 monotonic ms
    16 i32 argument a       20 i32 argument b          24 u32 reserved (0; the
    hash-chain link of SR-LOG-2 goes here)             28 u32 CRC-32 of bytes 0..27

On open the file is scanned: the next sequence number is recovered and a torn
tail (a record cut by a power loss) is ignored and overwritten, so at most the
record being written is lost and no corrupt record is ever returned; a damaged
record in the middle is skipped, leaving a visible gap in the sequence.  Appends
pack into one preallocated buffer.  The segment ring of SR-LOG-3 and the hash
chain are later issues; this file is one append-only segment.
"""
import struct

from firmware.crc import crc32

RECORD_SIZE = 32
MAGIC = 0xE71A
VERSION = 1
_FMT = "<HBBIIIiiI"          # without the CRC: 28 bytes
_BODY = 28


class CorruptRecord(ValueError):
    pass


def decode(raw):
    """(seq, type, rtc_s, mono_ms, a, b) of one record; raises CorruptRecord."""
    if len(raw) != RECORD_SIZE:
        raise CorruptRecord("record is %d bytes, expected %d" % (len(raw), RECORD_SIZE))
    magic, version, etype, seq, rtc_s, mono_ms, a, b, _ = struct.unpack_from(_FMT, raw, 0)
    if magic != MAGIC:
        raise CorruptRecord("bad magic 0x%04x" % magic)
    (crc,) = struct.unpack_from("<I", raw, _BODY)
    if crc != crc32(memoryview(raw)[:_BODY]):
        raise CorruptRecord("CRC mismatch in record %d" % seq)
    if version != VERSION:
        raise CorruptRecord("record format version %d unsupported" % version)
    return (seq, etype, rtc_s, mono_ms, a, b)


def _clamp_i32(v):
    if v > 0x7FFFFFFF:
        return 0x7FFFFFFF
    if v < -0x80000000:
        return -0x80000000
    return v


class EventLog:
    """Append-only log file of fixed-size records."""

    def __init__(self, storage, clock, name="events.bin"):
        self.storage = storage
        self.clock = clock
        self.name = name
        self._buf = bytearray(RECORD_SIZE)
        self.count = 0
        self.last_seq = 0
        self.first_seq = 1
        self.torn_bytes = 0
        self.corrupt_slots = 0
        self._recover()

    def _recover(self):
        """Scan the file.  Slot i holds sequence number first_seq + i; the log ends
        at the last slot that holds its expected record.  Anything after it is a
        torn write and is overwritten; a corrupt slot before it (flash damage) is
        kept in place and skipped by read(), so the host sees the gap."""
        if not self.storage.exists(self.name):
            return
        size = self.storage.size(self.name)
        first = None
        last_index = -1
        corrupt = 0
        f = self.storage.open(self.name, "rb")
        try:
            buf = bytearray(RECORD_SIZE)
            for index in range(size // RECORD_SIZE):
                if f.readinto(buf) != RECORD_SIZE:
                    break
                try:
                    seq = decode(buf)[0]
                except CorruptRecord:
                    corrupt += 1
                    continue
                if first is None:
                    first = seq - index
                if seq == first + index:
                    last_index = index
        finally:
            f.close()
        self.count = last_index + 1
        self.first_seq = first if first is not None and first > 0 else 1
        self.last_seq = self.first_seq + last_index if last_index >= 0 else 0
        self.corrupt_slots = corrupt
        self.torn_bytes = size - self.count * RECORD_SIZE

    def append(self, etype, a=0, b=0):
        """Write one record; returns its sequence number."""
        seq = self.last_seq + 1
        buf = self._buf
        struct.pack_into(_FMT, buf, 0, MAGIC, VERSION, etype, seq, self.clock.rtc_s(),
                         self.clock.ticks_ms() & 0xFFFFFFFF, _clamp_i32(a), _clamp_i32(b), 0)
        struct.pack_into("<I", buf, _BODY, crc32(memoryview(buf)[:_BODY]))
        if self.torn_bytes:
            f = self.storage.open(self.name, "r+b")
            f.seek(self.count * RECORD_SIZE)
        else:
            f = self.storage.open(self.name, "ab")
        try:
            f.write(buf)
            f.flush()
        finally:
            f.close()
        self.torn_bytes = 0
        if self.count == 0:
            self.first_seq = seq
        self.count += 1
        self.last_seq = seq
        return seq

    def read(self, from_seq, max_count):
        """Raw valid records with seq >= from_seq, at most max_count of them."""
        if from_seq < self.first_seq:
            from_seq = self.first_seq
        if from_seq > self.last_seq or max_count <= 0:
            return []
        index = from_seq - self.first_seq
        n = min(max_count, self.count - index)
        f = self.storage.open(self.name, "rb")
        try:
            f.seek(index * RECORD_SIZE)
            data = f.read(n * RECORD_SIZE)
        finally:
            f.close()
        out = []
        for i in range(len(data) // RECORD_SIZE):
            raw = data[i * RECORD_SIZE:(i + 1) * RECORD_SIZE]
            try:
                decode(raw)       # never return a corrupt record: skip it (a gap)
            except CorruptRecord:
                continue
            out.append(raw)
        return out
