"""Import of pulled logs into the fleet archive and the questions asked of it (SR-SVC-5).

``import_plog(db, path, serial)`` verifies the file (``logfile.verify``) and inserts each
record once: the key is (serial, seq); a record already archived with the same bytes is
counted as already there; one with other bytes is a conflict, stored in ``conflicts`` and
reported, never written over the archived copy.  Records are committed in batches, one
transaction each, so an interrupted import keeps whole batches and a repeated one adds only
what is missing.  Records that ``verify`` names as edited are not archived.
"""
import os
import time

import sqlalchemy as sa

from firmware import alarms as al
from firmware import eventlog, events
from host_tools.fleet import db as fdb
from host_tools.pumpctl import logfile

BATCH = 500


class ImportResult:
    def __init__(self, serial, path):
        self.serial = serial
        self.path = path
        self.pull_id = None
        self.new = 0
        self.already = 0
        self.conflicts = []         # seq of each record whose bytes differ from the archive's
        self.problems = []          # logfile.Problem from verify
        self.skipped = []           # seq not archived because verify named them edited
        self.first_seq = None
        self.last_seq = None

    def counts(self):
        return {"new": self.new, "already": self.already,
                "conflicts": len(self.conflicts), "problems": len(self.problems)}

    @property
    def ok(self):
        return not self.conflicts and not self.problems


def _insert_ignore(conn, table, rows, key_col):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING key: the keys actually inserted."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise fdb.ArchiveError("database %s is not supported (SQLite, PostgreSQL)" % name)
    stmt = insert(table).on_conflict_do_nothing().returning(key_col)
    return {row[0] for row in conn.execute(stmt, rows)}


def _store_batch(conn, serial, batch, pull_id, res):
    seqs = [r["seq"] for r in batch]
    t = fdb.records
    existing = dict(conn.execute(sa.select(t.c.seq, t.c.raw).where(
        t.c.serial == serial, t.c.seq.in_(seqs))).all())
    fresh = [r for r in batch if r["seq"] not in existing]
    inserted = _insert_ignore(conn, t, fresh, t.c.seq) if fresh else set()
    raced = [r["seq"] for r in fresh if r["seq"] not in inserted]
    if raced:                       # written by a concurrent import since our select
        existing.update(conn.execute(sa.select(t.c.seq, t.c.raw).where(
            t.c.serial == serial, t.c.seq.in_(raced))).all())
    bad = []
    for r in batch:
        if r["seq"] in inserted:
            continue
        if bytes(existing[r["seq"]]) == r["raw"]:
            res.already += 1
        else:
            bad.append(r)
    if bad:
        conn.execute(fdb.conflicts.insert(), [
            {"pull_id": pull_id, "serial": serial, "seq": r["seq"], "raw": r["raw"]}
            for r in bad])
    res.new += len(inserted)
    res.conflicts.extend(r["seq"] for r in bad)


def _file_records(raws, skip):
    """Decoded rows of the file's CRC-valid records, first copy of each seq, in file order."""
    out, seen = [], set()
    for raw in raws:
        try:
            seq, etype, rtc_s, mono_ms, a, b = eventlog.decode(raw)
        except eventlog.CorruptRecord:
            continue
        if seq in seen or seq in skip:
            continue
        seen.add(seq)
        out.append({"seq": seq, "type": etype, "rtc_s": rtc_s, "mono_ms": mono_ms,
                    "a": a, "b": b,
                    "link": int.from_bytes(eventlog.link_of(raw), "little"),
                    "raw": bytes(raw)})
    return out


def import_plog(db, path, serial, model=None, batch=BATCH, progress=None, now=None):
    """Archive a pulled log (``.plog``) of pump ``serial``; returns an ImportResult.

    ``db``: a path, a URL or an Engine.  Raises logfile.LogFileError for an unreadable
    file, fdb.ArchiveError for an unusable archive.  ``progress(done, total)`` is called
    after each committed batch."""
    if not serial:
        raise ValueError("a pump serial is needed")
    verification = logfile.verify(path)     # first: an unreadable file leaves no archive
    header, raws = logfile._read(path)  # noqa: SLF001 - the raw bytes, as verified above
    engine = fdb.open_archive(db)
    res = ImportResult(serial, path)
    res.problems = list(verification.problems)
    res.skipped = sorted({p.seq for p in res.problems if p.kind == "edited" and p.seq})
    rows = _file_records(raws, set(res.skipped))
    for r in rows:
        r["serial"] = serial
    if rows:
        res.first_seq = min(r["seq"] for r in rows)
        res.last_seq = max(r["seq"] for r in rows)
    now = int(time.time()) if now is None else now
    with engine.begin() as conn:
        _insert_ignore(conn, fdb.pumps, [{"serial": serial, "model": model,
                                          "first_seen_s": now, "last_seen_s": now}],
                       fdb.pumps.c.serial)
        values = {"last_seen_s": now}
        if model:
            values["model"] = model
        conn.execute(fdb.pumps.update().where(fdb.pumps.c.serial == serial).values(**values))
        res.pull_id = conn.execute(fdb.pulls.insert().values(
            serial=serial, source=os.path.basename(path), started_s=now,
            file_first_seq=header["first_seq"], first_seq=res.first_seq,
            last_seq=res.last_seq, records_in_file=len(raws), new=0, already=0,
            conflicts=0, problems=len(res.problems),
            problem_text="\n".join(p.message for p in res.problems))).inserted_primary_key[0]
    for i in range(0, len(rows), batch):
        with engine.begin() as conn:
            _store_batch(conn, serial, rows[i:i + batch], res.pull_id, res)
        if progress is not None:
            progress(min(i + batch, len(rows)), len(rows))
    with engine.begin() as conn:
        conn.execute(fdb.pulls.update().where(fdb.pulls.c.id == res.pull_id).values(
            finished_s=int(time.time()), new=res.new, already=res.already,
            conflicts=len(res.conflicts)))
    return res


# ---- questions -------------------------------------------------------------
def _ranges(lo_hi_pairs):
    return [(int(lo), int(hi)) for lo, hi in lo_hi_pairs]


def gaps(conn, serial=None):
    """{serial: [(lo, hi)]}: sequence ranges absent from the archive and not explained by
    recycling (a LOG_SEGMENT_RECYCLED marker after the range naming a first-kept number
    above it, as ``logfile.verify`` rules, or a pull whose file header says the pump had
    recycled them before the first pull)."""
    t = fdb.records
    cond = [] if serial is None else [t.c.serial == serial]
    prev = sa.func.lag(t.c.seq).over(partition_by=t.c.serial, order_by=t.c.seq).label("prev")
    sub = sa.select(t.c.serial, t.c.seq, prev).where(*cond).subquery()
    holes = conn.execute(sa.select(sub.c.serial, sub.c.prev + 1, sub.c.seq - 1).where(
        sub.c.seq > sub.c.prev + 1).order_by(sub.c.serial, sub.c.seq)).all()
    firsts = conn.execute(sa.select(t.c.serial, sa.func.min(t.c.seq)).where(*cond).group_by(
        t.c.serial)).all()
    markers = {}
    for s, mseq, kept in conn.execute(sa.select(t.c.serial, t.c.seq, t.c.a).where(
            t.c.type == eventlog.LOG_SEGMENT_RECYCLED, *cond)):
        markers.setdefault(s, []).append((mseq, kept))
    pcond = [] if serial is None else [fdb.pulls.c.serial == serial]
    recycled_before = dict(conn.execute(sa.select(
        fdb.pulls.c.serial, sa.func.max(fdb.pulls.c.file_first_seq)).where(*pcond).group_by(
        fdb.pulls.c.serial)).all())
    out = {}
    cands = [(s, 1, first - 1) for s, first in firsts if first > 1]
    cands += [(s, lo, hi) for s, lo, hi in holes]
    for s, lo, hi in sorted(cands):
        if any(ms > hi and kept > hi for ms, kept in markers.get(s, ())):
            continue
        if lo == 1 and (recycled_before.get(s) or 0) > hi:
            continue
        out.setdefault(s, []).append((int(lo), int(hi)))
    return out


def active_alarms(conn, serial=None):
    """{serial: [alarm id]}: alarms raised and not cleared since the pump last powered on,
    in the order raised (a restart starts the alarm manager empty)."""
    t = fdb.records
    cond = [] if serial is None else [t.c.serial == serial]
    out = {}
    q = sa.select(t.c.serial, t.c.type, t.c.a).where(
        t.c.type.in_((events.POWER_ON, events.ALARM_RAISED, events.ALARM_CLEARED)),
        *cond).order_by(t.c.serial, t.c.seq)
    for s, etype, alarm_id in conn.execute(q):
        act = out.setdefault(s, [])
        if etype == events.POWER_ON:
            del act[:]
        elif etype == events.ALARM_RAISED:
            if alarm_id not in act:
                act.append(alarm_id)
        elif alarm_id in act:
            act.remove(alarm_id)
    return {s: a for s, a in out.items() if a}


def alarm_label(alarm_id):
    return al.name(alarm_id) if alarm_id in al.TABLE else "alarm %d" % alarm_id


def fleet_summary(db):
    """[dict(serial, model, records, first_seq, last_seq, last_seen_s, last_rtc_s,
    alarms: [id], gaps: [(lo, hi)], conflicts)] for every archived pump, by serial."""
    engine = fdb.open_archive(db, create=False)
    t = fdb.records
    with engine.connect() as conn:
        stats = {row[0]: row[1:] for row in conn.execute(sa.select(
            t.c.serial, sa.func.count(), sa.func.min(t.c.seq), sa.func.max(t.c.seq),
            sa.func.max(t.c.rtc_s)).group_by(t.c.serial))}
        nconf = dict(conn.execute(sa.select(fdb.conflicts.c.serial, sa.func.count()).group_by(
            fdb.conflicts.c.serial)).all())
        g = gaps(conn)
        alarms = active_alarms(conn)
        out = []
        for serial, model, last_seen in conn.execute(sa.select(
                fdb.pumps.c.serial, fdb.pumps.c.model, fdb.pumps.c.last_seen_s).order_by(
                fdb.pumps.c.serial)):
            n, lo, hi, rtc = stats.get(serial, (0, None, None, None))
            out.append({"serial": serial, "model": model, "records": n, "first_seq": lo,
                        "last_seq": hi, "last_seen_s": last_seen, "last_rtc_s": rtc,
                        "alarms": alarms.get(serial, []), "gaps": g.get(serial, []),
                        "conflicts": nconf.get(serial, 0)})
    return out


TIMELINE_TYPES = (events.POWER_ON, events.POWER_OFF, events.SELF_TEST_FAILED,
                  events.THERAPY_PROGRAMMED, events.THERAPY_STARTED, events.THERAPY_PAUSED,
                  events.THERAPY_RESUMED, events.THERAPY_STOPPED, events.THERAPY_COMPLETED,
                  events.ALARM_RAISED, events.ALARM_CLEARED, events.LIBRARY_LOADED,
                  events.LIBRARY_REJECTED, events.CLOCK_SET, events.ERROR,
                  eventlog.LOG_SEGMENT_RECYCLED)


def pump_timeline(db, serial, limit=50):
    """One pump: summary, pulls, and its last ``limit`` notable events (power, therapy,
    alarms raised/cleared, library, clock, recycle markers).  None if not archived."""
    engine = fdb.open_archive(db, create=False)
    t = fdb.records
    with engine.connect() as conn:
        pump = conn.execute(sa.select(fdb.pumps).where(fdb.pumps.c.serial == serial)).first()
        if pump is None:
            return None
        n, lo, hi, rtc_lo, rtc_hi = conn.execute(sa.select(
            sa.func.count(), sa.func.min(t.c.seq), sa.func.max(t.c.seq),
            sa.func.min(t.c.rtc_s), sa.func.max(t.c.rtc_s)).where(t.c.serial == serial)).one()
        evs = conn.execute(sa.select(t.c.seq, t.c.type, t.c.rtc_s, t.c.a, t.c.b).where(
            t.c.serial == serial, t.c.type.in_(TIMELINE_TYPES)).order_by(
            t.c.seq.desc()).limit(limit)).all()
        pulls = conn.execute(sa.select(fdb.pulls).where(fdb.pulls.c.serial == serial).order_by(
            fdb.pulls.c.id)).mappings().all()
        conf = [int(s) for (s,) in conn.execute(sa.select(fdb.conflicts.c.seq).where(
            fdb.conflicts.c.serial == serial).order_by(fdb.conflicts.c.seq))]
        return {"serial": serial, "model": pump.model, "first_seen_s": pump.first_seen_s,
                "last_seen_s": pump.last_seen_s, "records": n, "first_seq": lo,
                "last_seq": hi, "first_rtc_s": rtc_lo, "last_rtc_s": rtc_hi,
                "events": [dict(seq=s, type=ty, type_name=events.name(ty), rtc_s=r, a=a, b=b)
                           for s, ty, r, a, b in reversed(evs)],
                "pulls": [dict(p) for p in pulls], "conflicts": conf,
                "gaps": gaps(conn, serial).get(serial, []),
                "alarms": active_alarms(conn, serial).get(serial, [])}
