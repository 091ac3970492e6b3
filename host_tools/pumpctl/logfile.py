"""Pulled event-log files: format, resumable pull, verification (SR-LOG-2, SR-LOG-4).

Owns the host's copy of a pump's log.  ``pumpctl logs pull`` and ``logs verify``
(``cli.py``) are thin wrappers around ``pull()`` and ``verify()``; the exporter
reads a file with ``read_records()``.

File format (``.plog``), little-endian: a 32-byte header, then the pump's raw
32-byte records (``firmware/eventlog.py``) in the order they were pulled::

    0  4s  magic b"PLOG"            4  u16 format (1)      6  u16 record size (32)
    8  u32 first_seq: records below it were already recycled on the pump when
           the first pull ran (never part of this file)
    12 u32 head_seq: the last record the host pulled (the chain head it last saw)
    16 4s  head_link: that record's chain link
    20 u32 pump_first_seq: the first record the pump still kept at the last pull
    24 u32 reserved (0)                 28 u32 CRC-32 of bytes 0..27

The header is rewritten after every chunk of records is appended, so an
interrupted pull resumes after the last record in the file.  On resume the
pump's copy of that record must be byte-identical to ours and, when the header
names a later head (records cut from the end of the file), the pump's record
at that head must carry the link we saw: a history rewritten on the pump, even
with the chain recomputed, is refused.

Records that are gone from the pump (recycled, SR-LOG-3) are never a gap that
looks like tampering: a gap in the file is "recycled" when a later
``LOG_SEGMENT_RECYCLED`` marker in the file names a first-kept sequence number
above it; any other gap is "missing".
"""
import os
import struct
import time

from firmware import eventlog, events
from firmware.crc import crc32

MAGIC = b"PLOG"
FORMAT = 1
HEADER_SIZE = 32
RECORD_SIZE = eventlog.RECORD_SIZE
_HEADER = "<4sHHII4sII"


class LogFileError(Exception):
    """The file is missing, not a pulled log, or its header is damaged."""


class HistoryRewritten(Exception):
    """The pump's log no longer matches what the host pulled before."""


# ---- file access -----------------------------------------------------------
def _pack_header(h):
    raw = bytearray(struct.pack(_HEADER, MAGIC, FORMAT, RECORD_SIZE, h["first_seq"],
                                h["head_seq"], h["head_link"], h["pump_first_seq"], 0))
    return bytes(raw) + struct.pack("<I", crc32(bytes(raw)))


def _read(path):
    """(header dict, [raw records in file order])."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LogFileError("cannot read %s: %s" % (path, e.strerror or e))
    if len(data) < HEADER_SIZE or data[:4] != MAGIC:
        raise LogFileError("%s is not a pulled pump log (no PLOG header)" % path)
    magic, fmt, rsize, first_seq, head_seq, head_link, pump_first, _ = \
        struct.unpack_from(_HEADER, data, 0)
    (crc,) = struct.unpack_from("<I", data, 28)
    if crc != crc32(data[:28]):
        raise LogFileError("%s: header CRC mismatch (file damaged or edited)" % path)
    if fmt != FORMAT or rsize != RECORD_SIZE:
        raise LogFileError("%s: format %d / record size %d not supported" % (path, fmt, rsize))
    body = data[HEADER_SIZE:]
    if len(body) % RECORD_SIZE:
        raise LogFileError("%s: %d trailing bytes after the last whole record" % (
            path, len(body) % RECORD_SIZE))
    header = {"first_seq": first_seq, "head_seq": head_seq, "head_link": head_link,
              "pump_first_seq": pump_first}
    return header, [body[i:i + RECORD_SIZE] for i in range(0, len(body), RECORD_SIZE)]


def read_header(path):
    return _read(path)[0]


def record_dict(raw):
    """One raw record as dict(seq, type, type_name, rtc_s, mono_ms, a, b, link)."""
    seq, etype, rtc_s, mono_ms, a, b = eventlog.decode(raw)
    return {"seq": seq, "type": etype, "type_name": events.name(etype), "rtc_s": rtc_s,
            "mono_ms": mono_ms, "a": a, "b": b,
            "link": struct.unpack("<I", eventlog.link_of(raw))[0]}


def read_records(path):
    """Every record of a pulled log file that passes its CRC, in file order, as dicts
    (seq, type, type_name, rtc_s, mono_ms, a, b, link: the chain link as a u32).

    Raises LogFileError when the file is not a readable pulled log.  This does not
    check the chain, gaps or order: call ``verify(path)`` for that."""
    out = []
    for raw in _read(path)[1]:
        try:
            out.append(record_dict(raw))
        except eventlog.CorruptRecord:
            continue
    return out


def write_file(path, raws, first_seq=1, pump_first_seq=None):
    """A pulled-log file holding raws (tests, tools); the head is the last valid record."""
    head_seq, head_link = 0, b"\0\0\0\0"
    for raw in raws:
        try:
            head_seq = eventlog.decode(raw)[0]
            head_link = eventlog.link_of(raw)
        except eventlog.CorruptRecord:
            continue
    header = {"first_seq": first_seq, "head_seq": head_seq, "head_link": head_link,
              "pump_first_seq": first_seq if pump_first_seq is None else pump_first_seq}
    with open(path, "wb") as f:
        f.write(_pack_header(header))
        f.write(b"".join(bytes(r) for r in raws))


def resolve_out(out, serial):
    """--out DIR_OR_FILE: an existing directory gets ``pump-<serial>.plog``."""
    if os.path.isdir(out):
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in serial) or "UNSET"
        return os.path.join(out, "pump-%s.plog" % safe)
    return out


# ---- pull ------------------------------------------------------------------
class PullResult:
    def __init__(self, path):
        self.path = path
        self.pulled = 0
        self.from_seq = 0
        self.to_seq = 0
        self.resumed = False
        self.gaps = []          # (lo, hi) missing on the pump (damaged slots)
        self.recycled = []      # (lo, hi) recycled on the pump before they were pulled
        self.chain_breaks = []  # seq whose link does not follow from the previous record
        self.elapsed_s = 0.0


PIPELINE_DEPTH = 4


class _Windows:
    """``log_window(seq, chunk)`` answers for a pull, with up to ``depth`` LOG_READs in
    flight (PT-6).

    The pump answers one LOG_READ of at most 30 records per frame and handles the
    frames it has received once per application cycle (100 ms), so one request at
    a time pulls at most 30 records per cycle.  Here the requests for the windows
    after ``seq`` (seq + chunk, seq + 2*chunk, ...) are sent ahead and their
    replies are matched by request id.  ``get(seq)`` gives exactly the reply to
    ``log_window(seq, chunk)``: when the pull moves to a sequence number that was
    not asked for next (a gap, a recycled range, a short reply), the requests in
    flight are given up and the pipeline starts again from there, so the pull
    sees the same answers, in the same order, as one request at a time.  A link
    without ``log_window_send`` (a test's fake) is asked one window at a time.

    Depth 4 keeps a 115,200-baud link busy (a reply takes ~85 ms on the wire, a
    request waits up to one cycle) and bounds what a pull adds to one pump cycle
    to four LOG_READs (PT-6 bench: ~1.4 ms under MicroPython on x64); a deeper
    pipeline only helps a faster link and costs the pump more per cycle."""

    def __init__(self, link, chunk, target, depth):
        self.link = link
        self.chunk = chunk
        self.target = target
        self.depth = depth if hasattr(link, "log_window_send") else 0
        self.inflight = []          # (from_seq, request id), oldest first

    def get(self, seq):
        if self.depth <= 1:
            return self.link.log_window(seq, self.chunk)
        if self.inflight and self.inflight[0][0] != seq:
            self.abandon()
        nxt = self.inflight[-1][0] + self.chunk if self.inflight else seq
        while len(self.inflight) < self.depth and (nxt <= self.target or not self.inflight):
            self.inflight.append((nxt, self.link.log_window_send(nxt, self.chunk)))
            nxt += self.chunk
        from_seq, rid = self.inflight.pop(0)
        try:
            return self.link.log_window_wait(rid, from_seq, self.chunk)
        except Exception:
            self.link.forget(rid)
            self.abandon()
            raise

    def abandon(self):
        for _, rid in self.inflight:
            self.link.forget(rid)
        self.inflight = []


def pull(link, path, chunk=30, progress=None, depth=PIPELINE_DEPTH):
    """Pull every record after the file's last one (or all kept ones into a new file).

    ``link``: a PumpLink (``log_window``, and ``log_window_send``/``_wait`` to keep
    ``depth`` requests in flight); ``progress(done, total)`` after each
    chunk.  Raises HistoryRewritten (nothing appended) when the pump's log no
    longer matches the file, LogFileError for an unusable file, PumpError from
    the link.  The file is updated after every chunk."""
    res = PullResult(path)
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    if exists:
        header, raws = _read(path)
    else:
        header, raws = None, []
    last_raw = None
    for raw in reversed(raws):
        try:
            eventlog.decode(raw)
            last_raw = raw
            break
        except eventlog.CorruptRecord:
            continue
    t0 = time.monotonic()
    pump_first, target, _ = link.log_window(1, 0)
    if last_raw is not None:
        res.resumed = True
        last_seq = eventlog.decode(last_raw)[0]
        prev_link = eventlog.link_of(last_raw)
        seq = last_seq + 1
        if last_seq >= pump_first:
            _, _, recs = link.log_window(last_seq, 1)
            if not recs or recs[0] != last_raw:
                raise HistoryRewritten(
                    "the pump's record %d differs from the copy pulled earlier into %s: "
                    "its log was rewritten (nothing appended)" % (last_seq, path))
    else:
        seq = max(1, pump_first)
        prev_link = eventlog.GENESIS_LINK if seq == 1 else None
        if header is None:
            header = {"first_seq": seq, "head_seq": 0, "head_link": b"\0\0\0\0",
                      "pump_first_seq": pump_first}
    check_head = header["head_seq"] if header["head_seq"] >= seq else 0
    res.from_seq = seq
    total = max(0, target - seq + 1)
    start = seq
    mode = "r+b" if exists else "w+b"
    with open(path, mode) as f:
        if not exists:
            f.write(_pack_header(header))
        f.seek(0, 2)
        windows = _Windows(link, chunk, target, depth)
        try:
            while seq <= target:
                pump_first, _, recs = windows.get(seq)
                if seq < pump_first:
                    res.recycled.append((seq, pump_first - 1))
                    seq = pump_first
                    prev_link = None
                    continue
                if not recs:                    # a whole chunk of damaged slots
                    hi = min(target, seq + chunk - 1)
                    res.gaps.append((seq, hi))
                    seq = hi + 1
                    prev_link = None
                    continue
                out = []
                for raw in recs:
                    s = eventlog.decode(raw)[0]
                    if s < seq:
                        raise HistoryRewritten("sequence went back: expected %d, got %d"
                                               % (seq, s))
                    if s > seq:
                        res.gaps.append((seq, s - 1))
                        prev_link = None
                    link_now = eventlog.link_of(raw)
                    if prev_link is not None and link_now != eventlog.chain_link(prev_link, raw):
                        res.chain_breaks.append(s)
                    if check_head and s == check_head and link_now != header["head_link"]:
                        raise HistoryRewritten(
                            "the pump's record %d does not carry the chain head pulled earlier "
                            "into %s: its log was rewritten" % (s, path))
                    out.append(raw)
                    prev_link = link_now
                    seq = s + 1
                    res.pulled += 1
                    header["head_seq"] = s
                    header["head_link"] = link_now
                header["pump_first_seq"] = pump_first
                f.write(b"".join(out))
                f.seek(0)
                f.write(_pack_header(header))
                f.flush()
                f.seek(0, 2)
                if progress is not None:
                    progress(seq - start, total)
        finally:
            windows.abandon()
    res.to_seq = seq - 1
    res.elapsed_s = time.monotonic() - t0
    return res


# ---- verify ----------------------------------------------------------------
class Problem:
    def __init__(self, kind, seq, position, message):
        self.kind = kind            # edited | missing | reordered | duplicate
        self.seq = seq
        self.position = position    # 1-based record position in the file (after the header)
        self.message = message

    def __repr__(self):
        return "Problem(%r, %r, %r)" % (self.kind, self.seq, self.position)


class Verification:
    def __init__(self, path):
        self.path = path
        self.problems = []
        self.recycled = []          # (lo, hi) ranges gone on the pump, explained by a marker
        self.records = 0
        self.first_seq = 0
        self.last_seq = 0
        self.anchored = False       # True: the chain starts at genesis (seq 1)

    @property
    def ok(self):
        return not self.problems


def _ranges(seqs):
    out = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(lo, hi) for lo, hi in out]


def verify(path):
    """Check a pulled log: every record's CRC, sequence order, gaps and the hash chain.

    Returns a Verification whose ``problems`` name each missing, edited,
    reordered or duplicated record by sequence number and file position."""
    header, raws = _read(path)
    v = Verification(path)
    v.records = len(raws)
    decoded = []                    # (position, seq or None, raw)
    for pos, raw in enumerate(raws, 1):
        try:
            decoded.append((pos, eventlog.decode(raw)[0], raw))
        except eventlog.CorruptRecord as e:
            decoded.append((pos, None, raw))
            v.problems.append(Problem("edited", None, pos, "record at position %d fails its "
                                      "CRC (edited or damaged): %s" % (pos, e)))
    where = {}                      # seq -> first position
    by_seq = {}
    prev = None                     # (pos, seq) of the previous valid record in file order
    max_seen = None
    for pos, seq, raw in decoded:
        if seq is None:
            continue
        if seq in where:
            v.problems.append(Problem("duplicate", seq, pos, "record seq %d at position %d "
                                      "duplicates position %d" % (seq, pos, where[seq])))
            continue
        where[seq] = pos
        by_seq[seq] = raw
        if max_seen is not None and seq < max_seen[1]:
            v.problems.append(Problem("reordered", seq, pos, "record seq %d at position %d is "
                                      "out of order: it follows seq %d at position %d" % (
                                          seq, pos, prev[1], prev[0])))
        if max_seen is None or seq > max_seen[1]:
            max_seen = (pos, seq)
        prev = (pos, seq)
    # a record failing its CRC stands for the seq its neighbours leave out
    corrupt_seq = {}
    lo = header["first_seq"] or (min(where) if where else 1)
    last_valid = lo - 1
    for pos, seq, raw in decoded:
        if seq is not None:
            last_valid = seq
        elif last_valid + 1 not in where:
            corrupt_seq[last_valid + 1] = pos
            last_valid += 1
    for p in v.problems:
        if p.kind == "edited" and p.seq is None:
            for s, pos in corrupt_seq.items():
                if pos == p.position:
                    p.seq = s
                    p.message = "record seq %d at position %d fails its CRC (edited or " \
                                "damaged)" % (s, pos)
    hi = max([header["head_seq"]] + list(where))
    v.first_seq, v.last_seq = lo, hi
    markers = [(s, eventlog.decode(r)[4]) for s, r in by_seq.items()
               if eventlog.decode(r)[1] == eventlog.LOG_SEGMENT_RECYCLED]
    absent = [s for s in range(lo, hi + 1) if s not in where and s not in corrupt_seq]
    for a, b in _ranges(absent):
        if any(ms > b and kept > b for ms, kept in markers):
            v.recycled.append((a, b))
            continue
        before = where.get(a - 1)
        at = before + 1 if before is not None else 1
        text = "record seq %d" % a if a == b else "records seq %d..%d" % (a, b)
        v.problems.append(Problem("missing", a, at, "%s missing (expected at position %d)" % (
            text, at)))
    # the chain, in sequence order (a reorder is reported once, above, not as edits)
    good = {}                       # seq -> the link it should carry
    for seq in sorted(by_seq):
        raw = by_seq[seq]
        stored = eventlog.link_of(raw)
        if seq == 1:
            should = [eventlog.chain_link(eventlog.GENESIS_LINK, raw)]
            v.anchored = True
        elif seq - 1 in by_seq:
            should = [eventlog.chain_link(eventlog.link_of(by_seq[seq - 1]), raw)]
            if seq - 1 in good:
                should.append(eventlog.chain_link(good[seq - 1], raw))
        else:                       # first in file, after a recycle or a gap: an anchor
            good[seq] = stored
            continue
        good[seq] = should[-1] if stored not in should else stored
        if stored not in should:
            v.problems.append(Problem("edited", seq, where[seq], "record seq %d at position %d "
                                      "was edited: its chain link does not follow from seq %d"
                                      % (seq, where[seq], seq - 1)))
    hs = header["head_seq"]
    if hs in by_seq and eventlog.link_of(by_seq[hs]) != header["head_link"]:
        if not any(p.kind == "edited" and p.seq == hs for p in v.problems):
            v.problems.append(Problem("edited", hs, where[hs], "record seq %d at position %d "
                                      "does not carry the chain head the host pulled" % (
                                          hs, where[hs])))
    v.problems.sort(key=lambda p: (p.position, p.seq or 0))
    return v
