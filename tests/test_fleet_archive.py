"""Fleet archive on SQLite (SR-SVC-5): each record once, verified on insert, conflicts
reported, pumps with alarms or gaps listed.

The pump side is the real firmware EventLog on RAM storage with the real AlarmManager
writing the alarm records; the host side writes .plog files with ``logfile.write_file``
as a pull would leave them.
"""
import struct

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from firmware import alarms as al
from firmware import eventlog as el
from firmware import events
from firmware.crc import crc32
from hal.ram_storage import RamStorage
from host_tools.fleet import archive
from host_tools.fleet import db as fdb
from host_tools.pumpctl import logfile
from host_tools.pumpctl.cli import main


from tests.test_logfile import Clock  # noqa: E402  (the same stepping test clock)


def pump_log(n, **ring):
    log = el.EventLog(RamStorage(), Clock(), **ring)
    log.append(events.POWER_ON)
    for i in range(n - 1):
        log.append(events.RATE_CHANGED, i, -i)
    return log


def plog(tmp_path, name, raws, **kw):
    path = str(tmp_path / name)
    logfile.write_file(path, raws, **kw)
    return path


def archived(db, serial):
    engine = fdb.open_archive(db)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(
            fdb.records.c.seq, fdb.records.c.raw).where(
            fdb.records.c.serial == serial).order_by(fdb.records.c.seq))]


def _edited(raw):
    bad = bytearray(raw)
    bad[16] ^= 0x40                                 # argument a, CRC recomputed
    struct.pack_into("<I", bad, 28, crc32(bytes(bad[:28])))
    return bytes(bad)


def test_schema_is_versioned_and_migrating_twice_changes_nothing_SR_SVC_5(tmp_path):
    db = str(tmp_path / "a.sqlite")
    engine = fdb.open_archive(db)
    with engine.connect() as conn:
        assert fdb.current_version(conn) == fdb.LATEST
        names = set(sa.inspect(conn).get_table_names())
    assert {"schema_version", "pumps", "records", "pulls", "conflicts"} <= names
    assert fdb.migrate(engine) == fdb.LATEST
    with engine.connect() as conn:
        rows = conn.execute(sa.select(fdb.schema_version.c.version)).scalars().all()
    assert rows == [v for v, _, _ in fdb.MIGRATIONS]
    assert fdb.db_url(db) == "sqlite:///" + db
    assert fdb.db_url("postgresql+psycopg://u@localhost/fleet").startswith("postgresql")
    with engine.begin() as conn:                    # a newer archive is refused, not used
        conn.execute(fdb.schema_version.insert().values(version=fdb.LATEST + 1,
                                                        description="future", applied_s=0))
    with pytest.raises(fdb.ArchiveError, match="newer"):
        fdb.open_archive(db)


def test_import_archives_each_record_once_and_repeats_add_nothing_SR_SVC_5(tmp_path):
    log = pump_log(1200)
    raws = log.read(1, 100000)
    path = plog(tmp_path, "p.plog", raws)
    db = str(tmp_path / "a.sqlite")
    res = archive.import_plog(db, path, "SN-1", model="AP-1", batch=250)
    assert res.counts() == {"new": 1200, "already": 0, "conflicts": 0, "problems": 0}
    assert (res.first_seq, res.last_seq) == (1, 1200)
    res = archive.import_plog(db, path, "SN-1")
    assert res.counts() == {"new": 0, "already": 1200, "conflicts": 0, "problems": 0}
    rows = archived(db, "SN-1")
    assert [s for s, _ in rows] == list(range(1, 1201))
    assert [bytes(r) for _, r in rows] == [bytes(r) for r in raws]
    [summary] = archive.fleet_summary(db)
    assert (summary["serial"], summary["model"], summary["records"]) == ("SN-1", "AP-1", 1200)
    assert summary["gaps"] == [] and summary["alarms"] == []


def test_an_interrupted_and_repeated_import_leaves_each_record_once_SR_SVC_5(tmp_path):
    raws = pump_log(1000).read(1, 100000)
    path = plog(tmp_path, "p.plog", raws)
    db = str(tmp_path / "a.sqlite")

    class Stop(Exception):
        pass

    def stop_after_two(done, total):        # after the second committed batch
        if done >= 400:
            raise Stop()
    with pytest.raises(Stop):
        archive.import_plog(db, path, "SN-2", batch=200, progress=stop_after_two)
    assert [s for s, _ in archived(db, "SN-2")] == list(range(1, 401))
    # a failure inside a batch's transaction rolls the whole batch back
    real = archive._store_batch
    calls = []

    def dies_in_second(conn, *a):
        calls.append(1)
        real(conn, *a)
        if len(calls) == 2:
            raise Stop()
    archive._store_batch = dies_in_second
    try:
        with pytest.raises(Stop):
            archive.import_plog(db, path, "SN-2", batch=300)
    finally:
        archive._store_batch = real
    assert [s for s, _ in archived(db, "SN-2")] == list(range(1, 401))
    res = archive.import_plog(db, path, "SN-2", batch=300)
    assert res.counts() == {"new": 600, "already": 400, "conflicts": 0, "problems": 0}
    assert [bytes(r) for _, r in archived(db, "SN-2")] == [bytes(r) for r in raws]
    t = archive.pump_timeline(db, "SN-2")
    assert [p["finished_s"] is None for p in t["pulls"]] == [True, True, False]


def test_overlapping_imports_and_two_pumps_SR_SVC_5(tmp_path):
    raws = pump_log(600).read(1, 100000)
    other = pump_log(50).read(1, 100000)
    db = str(tmp_path / "a.sqlite")
    a = archive.import_plog(db, plog(tmp_path, "a.plog", raws[:350]), "SN-3")
    b = archive.import_plog(db, plog(tmp_path, "b.plog", raws[200:]), "SN-3")
    c = archive.import_plog(db, plog(tmp_path, "c.plog", other), "SN-4")
    assert (a.new, a.already) == (350, 0)
    assert (b.new, b.already, b.conflicts) == (250, 150, [])
    assert (c.new, c.already) == (50, 0)
    assert [bytes(r) for _, r in archived(db, "SN-3")] == [bytes(r) for r in raws]
    assert len(archived(db, "SN-4")) == 50
    assert [(r["serial"], r["records"], r["gaps"]) for r in archive.fleet_summary(db)] == \
        [("SN-3", 600, []), ("SN-4", 50, [])]


def test_a_conflicting_record_is_reported_and_never_overwritten_SR_SVC_5(tmp_path):
    raws = pump_log(100).read(1, 100000)
    db = str(tmp_path / "a.sqlite")
    archive.import_plog(db, plog(tmp_path, "a.plog", raws), "SN-5")
    # another pump's history under the same serial: CRC-valid, chain-valid, other bytes
    alien = el.EventLog(RamStorage(), Clock())
    for i in range(120):
        alien.append(events.THERAPY_PAUSED, i + 7)
    res = archive.import_plog(db, plog(tmp_path, "b.plog", alien.read(1, 1000)), "SN-5")
    assert res.counts() == {"new": 20, "already": 0, "conflicts": 100, "problems": 0}
    assert res.conflicts == list(range(1, 101))
    rows = archived(db, "SN-5")
    assert [bytes(r) for _, r in rows[:100]] == [bytes(r) for r in raws]
    assert archive.pump_timeline(db, "SN-5")["conflicts"] == list(range(1, 101))


def test_an_edited_record_is_not_archived_and_is_a_problem_SR_SVC_5(tmp_path):
    raws = pump_log(100).read(1, 100000)
    logs = list(raws)
    logs[41] = _edited(raws[41])
    db = str(tmp_path / "a.sqlite")
    res = archive.import_plog(db, plog(tmp_path, "e.plog", logs), "SN-6")
    assert [(p.kind, p.seq) for p in res.problems] == [("edited", 42)]
    assert res.skipped == [42] and res.new == 99 and not res.ok
    assert archive.fleet_summary(db)[0]["gaps"] == [(42, 42)]
    # the genuine copy, pulled again, fills the hole
    res = archive.import_plog(db, plog(tmp_path, "p.plog", raws), "SN-6")
    assert (res.new, res.already, res.conflicts) == (1, 99, [])
    assert archive.fleet_summary(db)[0]["gaps"] == []


def test_gaps_not_explained_by_recycling_are_listed_SR_SVC_5(tmp_path):
    log = pump_log(10, segments=3, segment_records=8)
    db = str(tmp_path / "a.sqlite")
    archive.import_plog(db, plog(tmp_path, "a.plog", log.read(1, 100)), "SN-7")
    for i in range(40):                             # the ring wraps past record 10
        log.append(events.RATE_CHANGED, i)
    kept = log.read(log.first_seq, 1000)
    assert log.first_seq > 11
    archive.import_plog(db, plog(tmp_path, "b.plog", kept, first_seq=log.first_seq), "SN-7")
    assert archive.fleet_summary(db)[0]["gaps"] == []          # recycled, not missing
    # a hole nobody explains: records cut out of a pulled file
    raws = pump_log(300).read(1, 1000)
    archive.import_plog(db, plog(tmp_path, "c.plog", raws[:100] + raws[130:250]), "SN-8")
    # a pump whose archive starts after 1 without any recycling in sight
    archive.import_plog(db, plog(tmp_path, "d.plog", raws[20:40], first_seq=1), "SN-9")
    gaps = {r["serial"]: r["gaps"] for r in archive.fleet_summary(db)}
    assert gaps == {"SN-7": [], "SN-8": [(101, 130)], "SN-9": [(1, 20)]}


def alarm_pump():
    """A pump whose firmware raised occlusion and battery-low, cleared the occlusion."""
    log = pump_log(20)
    mgr = al.AlarmManager(None, log)
    mgr.raise_alarm(al.OCCLUSION_DOWN, 0)
    mgr.raise_alarm(al.BATTERY_LOW, 0)
    mgr.acknowledge()
    mgr.cause_gone(al.OCCLUSION_DOWN)
    log.append(events.RATE_CHANGED, 1)
    return log, mgr


def test_active_alarms_are_raised_without_a_later_clear_SR_SVC_5(tmp_path):
    log, mgr = alarm_pump()
    db = str(tmp_path / "a.sqlite")
    archive.import_plog(db, plog(tmp_path, "a.plog", log.read(1, 1000)), "SN-10")
    assert archive.fleet_summary(db)[0]["alarms"] == [al.BATTERY_LOW] == list(mgr.active)
    log.append(events.POWER_ON)                     # a restart starts the manager empty
    archive.import_plog(db, plog(tmp_path, "b.plog", log.read(1, 1000)), "SN-10")
    assert archive.fleet_summary(db)[0]["alarms"] == []


def test_fleet_cli_import_list_show_and_exit_codes_SR_SVC_5(tmp_path):
    run = CliRunner()
    db = str(tmp_path / "fleet.sqlite")
    log, _ = alarm_pump()
    good = plog(tmp_path, "good.plog", log.read(1, 1000))
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "SN-A", good])
    assert res.exit_code == 0, res.output
    assert "SN-A: 26 new, 0 already archived, 0 conflicts, 0 problems" in res.output
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "SN-A", good])
    assert res.exit_code == 0 and "0 new, 26 already archived" in res.output
    raws = pump_log(300).read(1, 1000)
    holed = plog(tmp_path, "holed.plog", raws[:100] + raws[130:])
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "SN-B", holed])
    assert res.exit_code == 1 and "PROBLEM MISSING: records seq 101..130" in res.output
    other = el.EventLog(RamStorage(), Clock())
    for i in range(5):
        other.append(events.THERAPY_PAUSED, i)
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "SN-B",
                            plog(tmp_path, "x.plog", other.read(1, 10))])
    assert res.exit_code == 1 and "CONFLICT: record seq 1 differs" in res.output
    res = run.invoke(main, ["fleet", "list", "--db", db])
    assert res.exit_code == 0, res.output
    assert "SN-A" in res.output and "BATTERY LOW" in res.output
    assert "OCCLUSION" not in res.output and "101..130" in res.output
    res = run.invoke(main, ["fleet", "show", "--db", db, "--serial", "SN-A"])
    assert res.exit_code == 0, res.output
    assert "active alarms: BATTERY LOW" in res.output and "ALARM_CLEARED" in res.output
    assert "OCCLUSION DOWNSTREAM" in res.output
    res = run.invoke(main, ["fleet", "show", "--db", db, "--serial", "NOPE"])
    assert res.exit_code == 1 and "not in the archive" in res.output
    res = run.invoke(main, ["fleet", "list", "--db", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 1 and "no fleet archive" in res.output
    assert not (tmp_path / "none.sqlite").exists()
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "SN-C",
                            str(tmp_path / "missing.plog")])
    assert res.exit_code == 1 and "cannot read" in res.output
    res = run.invoke(main, ["fleet", "import", "--db", db, good])
    assert res.exit_code == 2


def test_the_schema_compiles_for_postgresql_without_a_server_SR_SVC_5():
    """Only the SQL text: running on a real PostgreSQL server is the next step."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable
    dialect = postgresql.dialect()
    ddl = str(CreateTable(fdb.records).compile(dialect=dialect))
    assert "seq BIGINT NOT NULL" in ddl and "raw BYTEA NOT NULL" in ddl
    assert "PRIMARY KEY (serial, seq)" in ddl
    stmt = postgresql.insert(fdb.records).on_conflict_do_nothing().returning(fdb.records.c.seq)
    assert "ON CONFLICT DO NOTHING RETURNING" in str(stmt.compile(dialect=dialect))
