"""SR-SVC-5: fleet archive insert rate and the "pumps with alarms or gaps" query, on SQLite
and on PostgreSQL.

Prepares a fleet of ``--pumps`` pumps x ``--records`` records (defaults 1,000 x 1,000):
each pump's log is written by the firmware's own ``EventLog`` over ``RamStorage`` (the real
record encoder and hash chain, in process, a few microseconds a record) and saved as a
pulled ``.plog`` with ``logfile.write_file``.  The fleet is mixed: every 10th pump ends with
an alarm still active, every 7th raised and cleared one, every 13th restarted after an
alarm (not active any more), every 20th (from the 6th) has 25 records cut out of its
pulled file (a gap).

Then, for each database (SQLite file in a temporary directory; PostgreSQL: a private
server started with ``tests/pg_server.py``, durable defaults, fsync on):

  - insert rate: every file imported with ``archive.import_plog`` (what
    ``pumpctl fleet import`` runs: verify, decode, batches of 2,000 in one transaction
    each), records per second over the whole fleet; then the same for a repeated import
    of 100 of the pumps (every record already archived: the cost of a repeated pull);
  - the query: ``archive.fleet_summary(db, having=("alarms", "gaps"))``, what
    ``pumpctl fleet list --alarms --gaps`` asks, best of 3, with its parts (per-pump
    GROUP BY, gaps, active alarms), and the answer checked against the fleet as built.

Usage: .venv/bin/python tests/bench/archive_bench.py [--pumps N] [--records N]
       [--backend sqlite|postgresql] (default both) [--fast-pg] (fsync off)
"""
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from firmware import alarms as al  # noqa: E402
from firmware import eventlog as el  # noqa: E402
from firmware import events  # noqa: E402
from hal.ram_storage import RamStorage  # noqa: E402
from host_tools.fleet import archive  # noqa: E402
from host_tools.fleet import db as fdb  # noqa: E402
from host_tools.pumpctl import logfile  # noqa: E402
from tests import pg_server  # noqa: E402

PUMPS = 1000
RECORDS = 1000
REPEAT_PUMPS = 100
HOLE = 25


class _Clock:
    def __init__(self, start_s):
        self.ms = 0
        self.start_s = start_s

    def ticks_ms(self):
        self.ms += 250
        return self.ms

    def rtc_s(self):
        return self.start_s + self.ms // 1000


def pump_raws(i, n):
    """(raws, expect_alarm, expect_gap) of pump i: n chained records from the firmware's
    EventLog; the alarm pattern chosen by i."""
    log = el.EventLog(RamStorage(), _Clock(1795000000 + 3600 * i))
    log.append(events.POWER_ON)
    mgr = al.AlarmManager(None, log)
    mid = n // 2
    active = False
    while log.last_seq < n - 4:
        log.append(events.RATE_CHANGED, log.last_seq, 0)
        if log.last_seq == mid:
            if i % 7 == 0:                          # raised and cleared
                mgr.raise_alarm(al.OCCLUSION_DOWN, 0)
                mgr.acknowledge()
                mgr.cause_gone(al.OCCLUSION_DOWN)
            if i % 13 == 0:                         # raised, then the pump restarted
                mgr.raise_alarm(al.BATTERY_LOW, 0)
                log.append(events.POWER_ON)
                mgr = al.AlarmManager(None, log)
    if i % 10 == 0:                                 # still active at the pull
        mgr.raise_alarm(al.BATTERY_LOW, 0)
        active = True
    while log.last_seq < n:
        log.append(events.RATE_CHANGED, 1, 0)
    raws = log.read(1, n)
    gap = i % 20 == 5
    if gap:
        cut = n // 3
        raws = raws[:cut] + raws[cut + HOLE:]
    return raws, active, gap


def prepare(tmp, pumps, records):
    files, expect = [], set()
    n = 0
    for i in range(pumps):
        raws, active, gap = pump_raws(i, records)
        path = os.path.join(tmp, "pump-%04d.plog" % i)
        logfile.write_file(path, raws)
        files.append(("SN-%04d" % i, path, len(raws)))
        n += len(raws)
        if active or gap:
            expect.add("SN-%04d" % i)
    return files, expect, n


def _best(fn, runs=3):
    best, out = None, None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


def run_backend(name, db, files, expect, total):
    fdb.open_archive(db)
    t0 = time.perf_counter()
    for serial, path, n in files:
        res = archive.import_plog(db, path, serial, model="AP-1")
        if res.new != n or res.conflicts:
            raise RuntimeError("%s: %d new of %d" % (serial, res.new, n))
    ins_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = 0
    for serial, path, n in files[:REPEAT_PUMPS]:
        res = archive.import_plog(db, path, serial)
        if res.new or res.already != n:
            raise RuntimeError("%s: repeated import added %d" % (serial, res.new))
        again += n
    rep_s = time.perf_counter() - t0
    q_s, rows = _best(lambda: archive.fleet_summary(db, having=("alarms", "gaps")))
    got = {r["serial"] for r in rows}
    if got != expect:
        raise RuntimeError("query answered %d pumps, expected %d" % (len(got), len(expect)))
    engine = fdb.open_archive(db)
    with engine.connect() as conn:
        stats_s, stats = _best(lambda: archive._seq_stats(conn))  # noqa: SLF001
        gaps_s, _ = _best(lambda: archive.gaps(conn, stats=stats))
        alarms_s, _ = _best(lambda: archive.active_alarms(conn))
    print("  %-10s insert %9.0f records/s (%d records, %d pumps, %.1f s)  repeated import "
          "%9.0f records/s (%d pumps)" % (name, total / ins_s, total, len(files), ins_s,
                                          again / rep_s, min(REPEAT_PUMPS, len(files))),
          flush=True)
    print("  %-10s pumps with alarms or gaps: %d of %d in %7.3f s (best of 3; GROUP BY "
          "%.3f s, gaps %.3f s, active alarms %.3f s)" % (
              name, len(rows), len(files), q_s, stats_s, gaps_s, alarms_s), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pumps", type=int, default=PUMPS)
    ap.add_argument("--records", type=int, default=RECORDS)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    ap.add_argument("--fast-pg", action="store_true",
                    help="PostgreSQL with fsync off (the test suite's setting)")
    args = ap.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files, expect, total = prepare(tmp, args.pumps, args.records)
        print("SR-SVC-5  fleet archive, %d pumps x %d records (%d records, %d with active "
              "alarms or gaps) prepared in %.1f s (EventLog + RamStorage, .plog files)" % (
                  args.pumps, args.records, total, len(expect), time.perf_counter() - t0),
              flush=True)
        for name in backends:
            if name == "sqlite":
                run_backend("sqlite", os.path.join(tmp, "fleet.sqlite"), files, expect, total)
                continue
            try:
                server = pg_server.PgServer(durable=not args.fast_pg).start()
            except pg_server.PgUnavailable as e:
                print("  postgresql SKIPPED: %s" % e)
                continue
            try:
                label = "postgresql" if not args.fast_pg else "pg-nofsync"
                run_backend(label, server.new_database(), files, expect, total)
            finally:
                fdb.dispose_all()
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
