"""Import of pulled logs into the fleet archive, the questions asked of it, and its export
(SR-SVC-5).  Owns everything done with the archive's rows; ``db.py`` owns connections,
tables and migrations, ``cli.py`` the ``pumpctl fleet`` commands.

``import_plog(db, path, serial)`` verifies the file (``logfile.verify``) and inserts each
record once: the key is (serial, seq); a record already archived with the same bytes is
counted as already there; one with other bytes is a conflict, stored in ``conflicts`` and
reported, never written over the archived copy.  Records are committed in batches, one
transaction each, so an interrupted import keeps whole batches and a repeated one adds only
what is missing.  Records that ``verify`` names as edited are not archived.

Questions: ``fleet_summary`` (per pump, optionally only those ``having`` active alarms, gaps
or conflicts), ``gaps``, ``active_alarms``, ``pump_timeline``.  Export: ``write_summary``,
``write_records`` (CSV / JSON).  Every statement runs on SQLite and PostgreSQL; the one
built per dialect is the insert-or-ignore (``_insert_ignore``).
"""
import os
import time

import sqlalchemy as sa

from firmware import alarms as al
from firmware import eventlog, events
from host_tools.fleet import db as fdb
from host_tools.pumpctl import logfile

# records a transaction: an interrupted import loses at most one batch of work; a 1,000-record
# pull is one batch (commits, not statements, bound the insert rate on a slow disk)
BATCH = 2000


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
    """INSERT ... ON CONFLICT DO NOTHING RETURNING key: the keys actually inserted.

    The statement is the dialect's own (``sqlalchemy.dialects.sqlite.insert`` /
    ``postgresql.insert``).  SQLite takes the rows as an executemany (SQLAlchemy's
    "insertmanyvalues": multi-row VALUES with RETURNING).  PostgreSQL takes them as one
    array per column, ``INSERT ... SELECT unnest(:c1), unnest(:c2), ...``: nine parameters
    for the whole batch instead of nine per row, about 3.5 times the insert rate of
    insertmanyvalues through psycopg (tests/bench/archive_bench.py)."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).on_conflict_do_nothing().returning(key_col)
        return {row[0] for row in conn.execute(stmt, rows)}
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY, insert
        cols = list(rows[0])
        arrays = sa.select(*[sa.func.unnest(sa.bindparam(
            "u_" + c, [r.get(c) for r in rows], type_=ARRAY(table.c[c].type))) for c in cols])
        stmt = insert(table).from_select(cols, arrays).on_conflict_do_nothing().returning(
            key_col)
        return {row[0] for row in conn.execute(stmt)}
    raise fdb.ArchiveError("database %s is not supported (SQLite, PostgreSQL)" % name)


def _archived_raw(conn, serial, seqs):
    """{seq: raw} of the archived records of ``serial`` among ``seqs``.  A batch is a run of
    consecutive numbers in any file a pump gave: asked as a range (an index range scan
    with two parameters; an IN list of 500 parameters costs ~150 ms a batch through
    SQLAlchemy + psycopg), as an IN list only when the numbers are scattered."""
    t = fdb.records
    lo, hi = min(seqs), max(seqs)
    if hi - lo < 4 * len(seqs):
        q = sa.select(t.c.seq, t.c.raw).where(t.c.serial == serial, t.c.seq.between(lo, hi))
        wanted = set(seqs)
        return {s: r for s, r in conn.execute(q) if s in wanted}
    return dict(conn.execute(sa.select(t.c.seq, t.c.raw).where(
        t.c.serial == serial, t.c.seq.in_(sorted(set(seqs))))).all())


def _store_batch(conn, serial, batch, pull_id, res):
    seqs = [r["seq"] for r in batch]
    t = fdb.records
    existing = _archived_raw(conn, serial, seqs)
    fresh = [r for r in batch if r["seq"] not in existing]
    inserted = _insert_ignore(conn, t, fresh, t.c.seq) if fresh else set()
    raced = [r["seq"] for r in fresh if r["seq"] not in inserted]
    if raced:                       # written by a concurrent import since our select
        existing.update(_archived_raw(conn, serial, raced))
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
    # the column is VARCHAR(64): PostgreSQL would refuse a longer one mid-import, SQLite
    # would keep it; refused here on both
    if len(serial) > fdb.pumps.c.serial.type.length:
        raise ValueError("pump serial %r is longer than %d characters"
                         % (serial, fdb.pumps.c.serial.type.length))
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
    with fdb.writer(engine) as conn, conn.begin():
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
    def finish(conn):
        conn.execute(fdb.pulls.update().where(fdb.pulls.c.id == res.pull_id).values(
            finished_s=int(time.time()), new=res.new, already=res.already,
            conflicts=len(res.conflicts)))
    for i in range(0, len(rows), batch):
        with fdb.writer(engine) as conn, conn.begin():
            _store_batch(conn, serial, rows[i:i + batch], res.pull_id, res)
            if i + batch >= len(rows):      # the last batch commits the pull's counts too
                finish(conn)
        if progress is not None:
            progress(min(i + batch, len(rows)), len(rows))
    if not rows:
        with fdb.writer(engine) as conn, conn.begin():
            finish(conn)
    return res


# ---- questions -------------------------------------------------------------
def _ranges(lo_hi_pairs):
    return [(int(lo), int(hi)) for lo, hi in lo_hi_pairs]


def _seq_stats(conn, serial=None):
    """{serial: (count, min seq, max seq, pump time of the newest record)}.  The aggregate
    reads only the primary-key index (serial, seq); the newest record's time is one lookup
    per pump."""
    t = fdb.records
    cond = [] if serial is None else [t.c.serial == serial]
    agg = sa.select(t.c.serial, sa.func.count().label("n"), sa.func.min(t.c.seq).label("lo"),
                    sa.func.max(t.c.seq).label("hi")).where(*cond).group_by(
        t.c.serial).subquery()
    q = sa.select(agg.c.serial, agg.c.n, agg.c.lo, agg.c.hi, t.c.rtc_s).join_from(
        agg, t, sa.and_(t.c.serial == agg.c.serial, t.c.seq == agg.c.hi))
    return {row[0]: tuple(row[1:]) for row in conn.execute(q)}


def gaps(conn, serial=None, stats=None):
    """{serial: [(lo, hi)]}: sequence ranges absent from the archive and not explained by
    recycling (a LOG_SEGMENT_RECYCLED marker after the range naming a first-kept number
    above it, as ``logfile.verify`` rules, or a pull whose file header says the pump had
    recycled them before the first pull).

    Only pumps whose record count is below max - min + 1 can have a hole inside their range:
    the holes (``LAG(seq) OVER (PARTITION BY serial ORDER BY seq)``) are looked for in those
    pumps' records only, so a fleet without holes costs one GROUP BY.  ``stats``: the
    result of ``_seq_stats`` when the caller has it already."""
    t = fdb.records
    if stats is None:
        stats = _seq_stats(conn, serial)
    holed = sorted(s for s, (n, lo, hi, _) in stats.items() if n < hi - lo + 1)
    holes = []
    for i in range(0, len(holed), 500):
        part = holed[i:i + 500]
        prev = sa.func.lag(t.c.seq).over(partition_by=t.c.serial,
                                         order_by=t.c.seq).label("prev")
        sub = sa.select(t.c.serial, t.c.seq, prev).where(t.c.serial.in_(part)).subquery()
        holes += conn.execute(sa.select(sub.c.serial, sub.c.prev + 1, sub.c.seq - 1).where(
            sub.c.seq > sub.c.prev + 1).order_by(sub.c.serial, sub.c.seq)).all()
    cands = [(s, 1, lo - 1) for s, (n, lo, hi, _) in stats.items() if lo > 1]
    cands += [(s, lo, hi) for s, lo, hi in holes]
    if not cands:
        return {}
    cond = [] if serial is None else [t.c.serial == serial]
    markers = {}
    for s, mseq, kept in conn.execute(sa.select(t.c.serial, t.c.seq, t.c.a).where(
            t.c.type == eventlog.LOG_SEGMENT_RECYCLED, *cond)):
        markers.setdefault(s, []).append((mseq, kept))
    pcond = [] if serial is None else [fdb.pulls.c.serial == serial]
    recycled_before = dict(conn.execute(sa.select(
        fdb.pulls.c.serial, sa.func.max(fdb.pulls.c.file_first_seq)).where(*pcond).group_by(
        fdb.pulls.c.serial)).all())
    out = {}
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


ATTENTION = ("alarms", "gaps", "conflicts")


def fleet_summary(db, serial=None, having=()):
    """[dict(serial, model, records, first_seq, last_seq, last_seen_s, last_rtc_s (pump
    clock of the newest record), alarms: [id], gaps: [(lo, hi)], conflicts)] for every
    archived pump (or only
    ``serial``), by serial.  ``having``: a subset of ATTENTION; when given, only the pumps
    with any of them (active alarms, unexplained gaps, conflicting copies) are returned:
    ``having=("alarms", "gaps")`` answers "which pumps have alarms or gaps"."""
    unknown = set(having) - set(ATTENTION)
    if unknown:
        raise ValueError("unknown filter %s: use %s" % (", ".join(sorted(unknown)),
                                                        ", ".join(ATTENTION)))
    engine = fdb.open_archive(db, create=False)
    with engine.connect() as conn:
        stats = _seq_stats(conn, serial)
        ccond = [] if serial is None else [fdb.conflicts.c.serial == serial]
        nconf = dict(conn.execute(sa.select(fdb.conflicts.c.serial, sa.func.count()).where(
            *ccond).group_by(fdb.conflicts.c.serial)).all())
        g = gaps(conn, serial, stats=stats)
        alarms = active_alarms(conn, serial)
        pcond = [] if serial is None else [fdb.pumps.c.serial == serial]
        out = []
        for s, model, last_seen in conn.execute(sa.select(
                fdb.pumps.c.serial, fdb.pumps.c.model, fdb.pumps.c.last_seen_s).where(
                *pcond).order_by(fdb.pumps.c.serial)):
            n, lo, hi, rtc = stats.get(s, (0, None, None, None))
            row = {"serial": s, "model": model, "records": n, "first_seq": lo,
                   "last_seq": hi, "last_seen_s": last_seen, "last_rtc_s": rtc,
                   "alarms": alarms.get(s, []), "gaps": g.get(s, []),
                   "conflicts": nconf.get(s, 0)}
            if having and not any(row[k] for k in having):
                continue
            out.append(row)
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


# ---- export ----------------------------------------------------------------
EXPORT_FORMATS = ("csv", "json")
EXPORT_KINDS = ("summary", "records")
SUMMARY_COLUMNS = ["serial", "model", "records", "first_seq", "last_seq", "last_seen_utc",
                   "last_seen_s", "last_rtc_utc", "last_rtc_s", "active_alarms",
                   "active_alarm_ids", "gaps", "conflicts"]


def _utc(unix_s):
    if unix_s is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def summary_export_row(r):
    """One ``fleet_summary`` row as export fields (alarms named, times in UTC too)."""
    return {"serial": r["serial"], "model": r["model"], "records": r["records"],
            "first_seq": r["first_seq"], "last_seq": r["last_seq"],
            "last_seen_utc": _utc(r["last_seen_s"]), "last_seen_s": r["last_seen_s"],
            "last_rtc_utc": _utc(r["last_rtc_s"]), "last_rtc_s": r["last_rtc_s"],
            "active_alarms": [alarm_label(a) for a in r["alarms"]],
            "active_alarm_ids": list(r["alarms"]),
            "gaps": [[lo, hi] for lo, hi in r["gaps"]], "conflicts": r["conflicts"]}


def write_summary(rows, fmt, f):
    """``fleet_summary`` rows to the text file ``f`` as csv (lists joined with ';', a gap
    as lo-hi) or json; returns the number of pumps."""
    import csv
    import json
    out = [summary_export_row(r) for r in rows]
    if fmt == "json":
        json.dump({"format": "infusion-pump-fleet-summary", "format_version": 1,
                   "pump_count": len(out), "pumps": out}, f, indent=2)
        f.write("\n")
        return len(out)
    w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in out:
        r = dict(r)
        r["active_alarms"] = ";".join(r["active_alarms"])
        r["active_alarm_ids"] = ";".join(map(str, r["active_alarm_ids"]))
        r["gaps"] = ";".join("%d-%d" % (lo, hi) for lo, hi in r["gaps"])
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    return len(out)


def iter_records(db, serials=None, chunk=2000):
    """(serial, raw) of archived records, by serial then seq, streamed (server-side cursor
    on PostgreSQL); ``serials``: only those pumps (None: all)."""
    engine = fdb.open_archive(db, create=False)
    t = fdb.records
    q = sa.select(t.c.serial, t.c.raw).order_by(t.c.serial, t.c.seq)
    if serials is not None:
        q = q.where(t.c.serial.in_(sorted(serials)))
    with engine.connect() as conn:
        for serial, raw in conn.execution_options(stream_results=True,
                                                  yield_per=chunk).execute(q):
            yield serial, bytes(raw)


def write_records(db, fmt, f, serials=None):
    """Archived records to the text file ``f``: csv with a ``serial`` column before the
    columns of ``pumpctl logs export`` (``logs_export.CSV_COLUMNS``, the same decoding) and
    the record's 32 bytes in hex last (``raw``, to check CRC and chain again), or json
    ``{"pumps": [{"serial", "model", "record_count", "records": [...]}]}``.  Streams the
    archive; returns the number of records."""
    import csv
    import json
    from host_tools import logs_export
    from host_tools.pumpctl import logfile
    models = {}
    if fmt == "json":
        engine = fdb.open_archive(db, create=False)
        with engine.connect() as conn:
            models = dict(conn.execute(sa.select(fdb.pumps.c.serial, fdb.pumps.c.model)).all())
    n = 0
    current = None
    count = 0

    def close_pump():
        f.write('\n    ], "record_count": %d}' % count)
    if fmt == "csv":
        w = csv.DictWriter(f, fieldnames=["serial"] + logs_export.CSV_COLUMNS + ["raw"],
                           lineterminator="\n", extrasaction="ignore")
        w.writeheader()
    else:
        f.write('{"format": "infusion-pump-fleet-records", "format_version": 1, '
                '"pumps": [')
    for serial, raw in iter_records(db, serials):
        d = logs_export.decode_record(logfile.record_dict(raw))
        d["raw"] = raw.hex()
        if fmt == "csv":
            d["serial"] = serial
            w.writerow({k: ("true" if v else "false") if isinstance(v, bool) else
                        ("" if v is None else v) for k, v in d.items()})
        else:
            if serial != current:
                if current is not None:
                    close_pump()
                    f.write(",")
                f.write('\n  {"serial": %s, "model": %s, "records": [' % (
                    json.dumps(serial), json.dumps(models.get(serial))))
                current, count = serial, 0
            f.write(("\n    " if count == 0 else ",\n    ") + json.dumps(d))
            count += 1
        n += 1
    if fmt == "json":
        if current is not None:
            close_pump()
        f.write("\n]}\n")
    return n


# ---- text shared by `pumpctl fleet` and the fleet page ---------------------------------------
def when_text(unix_s):
    """A pump-clock time as UTC text, '-' when unknown."""
    if unix_s is None:
        return "-"
    import time
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(unix_s))


def ranges_text(rs, most=6):
    """Sequence ranges [(lo, hi)] as '3, 7..9 (+2 more)'."""
    text = ", ".join("%d" % lo if lo == hi else "%d..%d" % (lo, hi) for lo, hi in rs[:most])
    if len(rs) > most:
        text += " (+%d more)" % (len(rs) - most)
    return text
