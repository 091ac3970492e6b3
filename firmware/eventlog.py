"""Event log (SR-LOG-2, SR-LOG-3): CRC-32 records, a hash chain, a ring of segment files.

Owns the on-flash record format and append/read/recovery through the Storage
HAL.  Record, 32 bytes little-endian (format version 2):

    0  u16 magic 0xE71A     2  u8 format version (2)   3  u8 event type
    4  u32 sequence number  8  u32 RTC seconds         12 u32 monotonic ms
    16 i32 argument a       20 i32 argument b          24 4-byte chain link
    28 u32 CRC-32 of bytes 0..27

Hash chain: link(record) = the first 4 bytes of SHA-256(link of the previous
record || bytes 0..23 of this record); the record with sequence number 1 is
chained from the fixed genesis link ``GENESIS_LINK`` (four zero bytes).  The
CRC covers the link too.  What this detects: a record edited, deleted or moved
by anyone who does not recompute the chain from that point on (the edited
record's link, or the next record's, no longer matches), and, because pumpctl
keeps the head (sequence number and link) it last pulled, any rewrite of the
history up to that head, even with the chain recomputed: the rewritten records
no longer reproduce the head the host holds.  What it does not detect: the
chain is unkeyed and only 32 bits, so someone with access to the flash who
rewrites records *after* the host's last pull and recomputes every later link
and CRC (public algorithms, no secret) is not detected, nor is truncation of
records the host has never seen (they look like "not yet written"); a random
forgery of one link passes with probability 2**-32, and nothing here
authenticates the pump (that is the service link's login, SR-SVC-2).

Ring (SR-LOG-3): ``segments`` files ``<base>.<k>.bin`` of ``segment_records``
slots each (default 9 x 2,048 = 18,432 slots; after the oldest segment is
recycled at least 8 x 2,048 = 16,384 records remain).  Segment k, when started
at sequence number F, holds F + j in slot j.  An append opens the head segment,
writes 32 bytes at its end and closes it: constant cost, never a scan.  When the
head segment is full the next one in ring order is truncated (``"wb"``) and, if
any record has ever been dropped, starts with a ``LOG_SEGMENT_RECYCLED`` marker
(a = the first sequence number still kept, b = the recycled segment's index),
which is chained like any record; ``read()`` never returns records below
``first_seq``, and the service reply tells the host that first kept number, so
a pull of records that are gone gets "recycled", not a gap that looks like
tampering.

Power loss: open reads, per segment, only the size and the last slots (back to
the last valid record), so a torn tail (a record cut by a power loss) is
ignored and overwritten and at most the record being written is lost; a power
cut inside a recycle leaves the truncated segment empty or holding the marker
only (its old records were being dropped anyway) and the next append recycles
it again.  ``read()`` decodes every record and checks its slot's sequence
number, so no corrupt record is ever returned: a damaged record in the middle
is skipped, leaving a visible gap for the host.
"""
import hashlib
import struct

from firmware.crc import crc32

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

RECORD_SIZE = 32
MAGIC = 0xE71A
VERSION = 2
_FMT = "<HBBIIIii"           # the 24 hashed bytes
_LINK = 24
_BODY = 28
GENESIS_LINK = b"\x00\x00\x00\x00"
SEGMENTS = 9
SEGMENT_RECORDS = 2048
# event type of the recycle marker (kept here, beside the ring that writes it;
# firmware/events.py names it for the host)
LOG_SEGMENT_RECYCLED = const(90)


class CorruptRecord(ValueError):
    pass


def decode(raw):
    """(seq, type, rtc_s, mono_ms, a, b) of one record; raises CorruptRecord."""
    if len(raw) != RECORD_SIZE:
        raise CorruptRecord("record is %d bytes, expected %d" % (len(raw), RECORD_SIZE))
    magic, version, etype, seq, rtc_s, mono_ms, a, b = struct.unpack_from(_FMT, raw, 0)
    if magic != MAGIC:
        raise CorruptRecord("bad magic 0x%04x" % magic)
    (crc,) = struct.unpack_from("<I", raw, _BODY)
    if crc != crc32(memoryview(raw)[:_BODY]):
        raise CorruptRecord("CRC mismatch in record %d" % seq)
    if version != VERSION:
        raise CorruptRecord("record format version %d unsupported" % version)
    return (seq, etype, rtc_s, mono_ms, a, b)


def link_of(raw):
    """The 4 chain-link bytes stored in a record."""
    return bytes(raw[_LINK:_BODY])


def chain_link(prev_link, raw):
    """The link a record must carry after a record whose link is prev_link."""
    h = hashlib.sha256(prev_link)
    h.update(bytes(raw[:_LINK]))
    return h.digest()[:4]


def _clamp_i32(v):
    if v > 0x7FFFFFFF:
        return 0x7FFFFFFF
    if v < -0x80000000:
        return -0x80000000
    return v


class EventLog:
    """Ring of segment files of fixed-size, chained records."""

    def __init__(self, storage, clock, name="events.bin", segments=SEGMENTS,
                 segment_records=SEGMENT_RECORDS):
        if segments < 2 or segment_records < 2:
            raise ValueError("the ring needs >= 2 segments of >= 2 records")
        self.storage = storage
        self.clock = clock
        base = name[:-4] if name.endswith(".bin") else name
        self.names = ["%s.%d.bin" % (base, k) for k in range(segments)]
        self.segment_records = segment_records
        self._buf = bytearray(RECORD_SIZE)
        self._seg_first = [0] * segments     # first seq of each segment, 0 = empty
        self._seg_count = [0] * segments     # valid slots (0..count-1)
        self._head = -1                      # segment being written
        self._torn = 0                       # bytes after the head's last valid slot
        self._link = GENESIS_LINK
        self.count = 0
        self.last_seq = 0
        self.first_seq = 1
        self.torn_bytes = 0
        self.recycled = 0                    # segments recycled since open
        self._recover()

    # ---- open -------------------------------------------------------------
    def _recover(self):
        buf = bytearray(RECORD_SIZE)
        best = 0
        for k in range(len(self.names)):
            name = self.names[k]
            if not self.storage.exists(name):
                continue
            size = self.storage.size(name)
            slots = size // RECORD_SIZE
            if slots > self.segment_records:
                slots = self.segment_records
            f = self.storage.open(name, "rb")
            try:
                j = slots - 1
                while j >= 0:        # back to the last valid record (normally one step)
                    f.seek(j * RECORD_SIZE)
                    if f.readinto(buf) == RECORD_SIZE:
                        try:
                            seq = decode(buf)[0]
                            if seq > j:
                                break
                        except CorruptRecord:
                            pass
                    j -= 1
            finally:
                f.close()
            if j < 0:
                continue
            self._seg_first[k] = seq - j
            self._seg_count[k] = j + 1
            if seq > best:
                best = seq
                self._head = k
                self._link = link_of(buf)
                self._torn = size - (j + 1) * RECORD_SIZE
        if self._head >= 0:
            self.last_seq = best
            self._refresh_first()
        self.torn_bytes = self._torn

    def _refresh_first(self):
        first = 0
        for k in range(len(self.names)):
            f = self._seg_first[k]
            if f and (first == 0 or f < first):
                first = f
        self.first_seq = first if first else self.last_seq + 1
        self.count = self.last_seq - self.first_seq + 1 if self.last_seq else 0

    # ---- append -----------------------------------------------------------
    def _pack(self, seq, etype, a, b):
        buf = self._buf
        struct.pack_into(_FMT, buf, 0, MAGIC, VERSION, etype, seq, self.clock.rtc_s(),
                         self.clock.ticks_ms() & 0xFFFFFFFF, _clamp_i32(a), _clamp_i32(b))
        link = chain_link(self._link, buf)
        buf[_LINK:_BODY] = link
        struct.pack_into("<I", buf, _BODY, crc32(memoryview(buf)[:_BODY]))
        return link

    def _written(self, k, seq, link):
        if self._seg_count[k] == 0:
            self._seg_first[k] = seq
        self._seg_count[k] += 1
        self.last_seq = seq
        self._link = link
        if self.count == 0:
            self.first_seq = seq
        self.count = self.last_seq - self.first_seq + 1

    def append(self, etype, a=0, b=0):
        """Write one record; returns its sequence number."""
        k = self._head
        if k >= 0 and self._seg_count[k] < self.segment_records:
            link = self._pack(self.last_seq + 1, etype, a, b)
            if self._torn:
                f = self.storage.open(self.names[k], "r+b")
                f.seek(self._seg_count[k] * RECORD_SIZE)
            else:
                f = self.storage.open(self.names[k], "ab")
            try:
                f.write(self._buf)
                f.flush()
            finally:
                f.close()
            self._torn = 0
            self.torn_bytes = 0
            self._written(k, self.last_seq + 1, link)
            return self.last_seq
        return self._append_new_segment(etype, a, b)

    def _append_new_segment(self, etype, a, b):
        k = (self._head + 1) % len(self.names)
        dropped = self._seg_count[k]
        self._seg_first[k] = 0           # "wb" truncates: its records are gone from here on
        self._seg_count[k] = 0
        self._refresh_first()
        f = self.storage.open(self.names[k], "wb")
        try:
            self._head = k
            self._torn = 0
            self.torn_bytes = 0
            if self.first_seq > 1 and self.last_seq:
                link = self._pack(self.last_seq + 1, LOG_SEGMENT_RECYCLED, self.first_seq, k)
                f.write(self._buf)
                f.flush()
                self._written(k, self.last_seq + 1, link)
            link = self._pack(self.last_seq + 1, etype, a, b)
            f.write(self._buf)
            f.flush()
            self._written(k, self.last_seq + 1, link)
        finally:
            f.close()
        if dropped:
            self.recycled += 1
        return self.last_seq

    # ---- read -------------------------------------------------------------
    def read(self, from_seq, max_count):
        """Raw valid records with seq >= from_seq, at most max_count of them."""
        if from_seq < self.first_seq:
            from_seq = self.first_seq
        out = []
        seq = from_seq
        buf = bytearray(RECORD_SIZE)
        while len(out) < max_count and seq <= self.last_seq:
            k = self._segment_of(seq)
            if k < 0:
                break
            first = self._seg_first[k]
            n = min(max_count - len(out), self._seg_count[k] - (seq - first))
            f = self.storage.open(self.names[k], "rb")
            try:
                f.seek((seq - first) * RECORD_SIZE)
                for i in range(n):
                    if f.readinto(buf) != RECORD_SIZE:
                        break
                    try:           # never return a corrupt record: skip it (a gap)
                        if decode(buf)[0] != seq + i:
                            continue
                    except CorruptRecord:
                        continue
                    out.append(bytes(buf))
            finally:
                f.close()
            seq += n
        return out

    def _segment_of(self, seq):
        for k in range(len(self.names)):
            first = self._seg_first[k]
            if first and first <= seq < first + self._seg_count[k]:
                return k
        return -1
