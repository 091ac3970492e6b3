"""Fleet archive on SQLite and PostgreSQL (SR-SVC-5): each record once, verified on insert,
conflicts reported, pumps with alarms or gaps listed, exported.

Every test taking ``db`` runs twice: on a SQLite file and on an empty database of a real
PostgreSQL server the suite starts itself (``tests/pg_server.py``; those cases skip, with
the reason, only where the server binaries are not installed).

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


from tests.pg_server import pg_server  # noqa: F401  (session fixture: a private server)
from tests.test_logfile import Clock  # noqa: E402  (the same stepping test clock)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """``--db`` of an empty archive: a SQLite file path or a PostgreSQL URL.  The engines
    the test opened are disposed after it, so pooled connections do not pile up on the
    shared server (max_connections=50) as tests are added."""
    if request.param == "sqlite":
        yield str(tmp_path / "a.sqlite")
    else:
        yield request.getfixturevalue("pg_server").new_database()
    fdb.dispose_all()


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


def test_schema_is_versioned_and_migrating_twice_changes_nothing_SR_SVC_5(tmp_path, db):
    engine = fdb.open_archive(db)
    with engine.connect() as conn:
        assert fdb.current_version(conn) == fdb.LATEST
        names = set(sa.inspect(conn).get_table_names())
    assert {"schema_version", "pumps", "records", "pulls", "conflicts"} <= names
    assert fdb.migrate(engine) == fdb.LATEST
    with engine.connect() as conn:
        rows = conn.execute(sa.select(fdb.schema_version.c.version)).scalars().all()
    assert rows == [v for v, _, _ in fdb.MIGRATIONS]
    if "://" not in db:
        assert fdb.db_url(db) == "sqlite:///" + db
    assert fdb.db_url("postgresql+psycopg://u@localhost/fleet").startswith("postgresql")
    with engine.begin() as conn:                    # a newer archive is refused, not used
        conn.execute(fdb.schema_version.insert().values(version=fdb.LATEST + 1,
                                                        description="future", applied_s=0))
    with pytest.raises(fdb.ArchiveError, match="newer"):
        fdb.open_archive(db)


def test_a_version_1_archive_is_migrated_in_place_and_keeps_its_records_SR_SVC_5(
        tmp_path, db, monkeypatch):
    """Migration 2 (an index) applied to an archive written by version-1 code."""
    raws = pump_log(50).read(1, 1000)
    monkeypatch.setattr(fdb, "MIGRATIONS", fdb.MIGRATIONS[:1])
    monkeypatch.setattr(fdb, "LATEST", 1)
    archive.import_plog(db, plog(tmp_path, "a.plog", raws), "SN-V1")
    engine = fdb.open_archive(db)
    with engine.connect() as conn:
        assert fdb.current_version(conn) == 1
        assert "ix_records_type_serial_seq" not in {
            i["name"] for i in sa.inspect(conn).get_indexes("records")}
    monkeypatch.undo()
    assert fdb.migrate(engine) == fdb.LATEST >= 2
    with engine.connect() as conn:
        assert "ix_records_type_serial_seq" in {
            i["name"] for i in sa.inspect(conn).get_indexes("records")}
        assert conn.execute(sa.select(fdb.schema_version.c.version).order_by(
            fdb.schema_version.c.version)).scalars().all() == [1, 2]
    assert [bytes(r) for _, r in archived(db, "SN-V1")] == [bytes(r) for r in raws]


def test_import_archives_each_record_once_and_repeats_add_nothing_SR_SVC_5(tmp_path, db):
    log = pump_log(1200)
    raws = log.read(1, 100000)
    path = plog(tmp_path, "p.plog", raws)
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


def test_an_interrupted_and_repeated_import_leaves_each_record_once_SR_SVC_5(tmp_path, db):
    raws = pump_log(1000).read(1, 100000)
    path = plog(tmp_path, "p.plog", raws)

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


def test_overlapping_imports_and_two_pumps_SR_SVC_5(tmp_path, db):
    raws = pump_log(600).read(1, 100000)
    other = pump_log(50).read(1, 100000)
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


def test_a_conflicting_record_is_reported_and_never_overwritten_SR_SVC_5(tmp_path, db):
    raws = pump_log(100).read(1, 100000)
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


def test_an_edited_record_is_not_archived_and_is_a_problem_SR_SVC_5(tmp_path, db):
    raws = pump_log(100).read(1, 100000)
    logs = list(raws)
    logs[41] = _edited(raws[41])
    res = archive.import_plog(db, plog(tmp_path, "e.plog", logs), "SN-6")
    assert [(p.kind, p.seq) for p in res.problems] == [("edited", 42)]
    assert res.skipped == [42] and res.new == 99 and not res.ok
    assert archive.fleet_summary(db)[0]["gaps"] == [(42, 42)]
    # the genuine copy, pulled again, fills the hole
    res = archive.import_plog(db, plog(tmp_path, "p.plog", raws), "SN-6")
    assert (res.new, res.already, res.conflicts) == (1, 99, [])
    assert archive.fleet_summary(db)[0]["gaps"] == []


def test_gaps_not_explained_by_recycling_are_listed_SR_SVC_5(tmp_path, db):
    log = pump_log(10, segments=3, segment_records=8)
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


def test_active_alarms_are_raised_without_a_later_clear_SR_SVC_5(tmp_path, db):
    log, mgr = alarm_pump()
    archive.import_plog(db, plog(tmp_path, "a.plog", log.read(1, 1000)), "SN-10")
    assert archive.fleet_summary(db)[0]["alarms"] == [al.BATTERY_LOW] == list(mgr.active)
    log.append(events.POWER_ON)                     # a restart starts the manager empty
    archive.import_plog(db, plog(tmp_path, "b.plog", log.read(1, 1000)), "SN-10")
    assert archive.fleet_summary(db)[0]["alarms"] == []


def test_fleet_cli_import_list_show_and_exit_codes_SR_SVC_5(tmp_path, db):
    run = CliRunner()
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
    url = "sqlite:///" + str(tmp_path / "none2.sqlite")      # the URL form: not created either
    res = run.invoke(main, ["fleet", "show", "--db", url, "--serial", "SN-A"])
    assert res.exit_code == 1 and "no fleet archive" in res.output
    assert not (tmp_path / "none2.sqlite").exists()
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "SN-C",
                            str(tmp_path / "missing.plog")])
    assert res.exit_code == 1 and "cannot read" in res.output
    res = run.invoke(main, ["fleet", "import", "--db", db, good])
    assert res.exit_code == 2


def test_the_schema_compiles_for_postgresql_without_a_server_SR_SVC_5():
    """The SQL text alone, checked even where no server can be started (the tests above
    run it on a real server)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable
    dialect = postgresql.dialect()
    ddl = str(CreateTable(fdb.records).compile(dialect=dialect))
    assert "seq BIGINT NOT NULL" in ddl and "raw BYTEA NOT NULL" in ddl
    assert "PRIMARY KEY (serial, seq)" in ddl
    stmt = postgresql.insert(fdb.records).on_conflict_do_nothing().returning(fdb.records.c.seq)
    assert "ON CONFLICT DO NOTHING RETURNING" in str(stmt.compile(dialect=dialect))


# ---- acceptance: an interrupted and repeated pull of 16,384 records ------------------------
RING_RECORDS = 16384                                # SR-LOG-3: the ring's guaranteed size


@pytest.fixture(scope="module")
def full_ring_log():
    """A pump whose log holds 16,384 chained records (the firmware EventLog, no recycling
    yet), with alarms raised and cleared along the way."""
    log = el.EventLog(RamStorage(), Clock())
    log.append(events.POWER_ON)
    mgr = al.AlarmManager(None, log)
    while log.last_seq < RING_RECORDS - 3:
        log.append(events.RATE_CHANGED, log.last_seq, -log.last_seq)
        if log.last_seq % 4000 == 0:
            mgr.raise_alarm(al.OCCLUSION_DOWN, 0)
            mgr.acknowledge()
            mgr.cause_gone(al.OCCLUSION_DOWN)
    while log.last_seq < RING_RECORDS:
        log.append(events.RATE_CHANGED, 1)
    assert (log.first_seq, log.last_seq) == (1, RING_RECORDS)
    return log


def assert_archived_once_and_chained(db, serial, expected_raws):
    """Each (serial, seq) exactly once, none lost, the bytes the pump wrote, the hash chain
    unbroken from the genesis link through the archived records."""
    engine = fdb.open_archive(db)
    t = fdb.records
    with engine.connect() as conn:
        dupes = conn.execute(sa.select(t.c.serial, t.c.seq).group_by(t.c.serial, t.c.seq)
                             .having(sa.func.count() > 1)).all()
        n, lo, hi = conn.execute(sa.select(sa.func.count(), sa.func.min(t.c.seq),
                                           sa.func.max(t.c.seq)).where(
            t.c.serial == serial)).one()
    assert dupes == []
    assert (n, lo, hi) == (len(expected_raws), 1, len(expected_raws))
    rows = archived(db, serial)
    assert [s for s, _ in rows] == list(range(1, len(expected_raws) + 1))
    assert [bytes(r) for _, r in rows] == [bytes(r) for r in expected_raws]
    link = el.GENESIS_LINK
    for seq, raw in rows:
        link = el.chain_link(link, raw)
        assert el.link_of(raw) == link, "chain broken at seq %d" % seq


def test_an_interrupted_and_repeated_pull_of_16384_records_archives_each_once_SR_SVC_5_SR_LOG_4(
        tmp_path, db, full_ring_log, monkeypatch):
    """The acceptance check of SR-SVC-5 with SR-LOG-4's resumable pull: the pull breaks off
    part-way, the partial file's import is interrupted between batches and then inside one,
    is repeated, the pull resumes, and the whole file is imported twice."""
    from tests.test_logfile import FakeLink
    log, serial = full_ring_log, "SN-RING"
    path = str(tmp_path / "pump.plog")

    class LinkLost(Exception):
        pass

    def cut_link(done, total):
        if done >= 7000:
            raise LinkLost()
    with pytest.raises(LinkLost):                   # the pull breaks off part-way
        logfile.pull(FakeLink(log), path, progress=cut_link)
    part = len(logfile.read_records(path))
    assert 7000 <= part < RING_RECORDS

    def unplugged(done, total):                     # import stops after 2 committed batches
        if done >= 2000:
            raise LinkLost()
    with pytest.raises(LinkLost):
        archive.import_plog(db, path, serial, batch=1000, progress=unplugged)
    assert len(archived(db, serial)) == 2000
    real, calls = archive._store_batch, []

    def killed_in_third(conn, *a):                  # dies inside a batch's transaction
        calls.append(1)
        real(conn, *a)
        if len(calls) == 3:
            raise LinkLost()
    monkeypatch.setattr(archive, "_store_batch", killed_in_third)
    with pytest.raises(LinkLost):
        archive.import_plog(db, path, serial, batch=1500)
    monkeypatch.setattr(archive, "_store_batch", real)
    assert len(archived(db, serial)) == 3000        # 2 x 1,500: the third rolled back

    res = archive.import_plog(db, path, serial)     # repeated: the rest of the part
    assert res.counts() == {"new": part - 3000, "already": 3000, "conflicts": 0,
                            "problems": 0}
    pulled = logfile.pull(FakeLink(log), path)      # the pull resumes where it broke off
    assert pulled.resumed and (pulled.from_seq, pulled.to_seq) == (part + 1, RING_RECORDS)
    assert logfile.verify(path).ok
    res = archive.import_plog(db, path, serial)
    assert res.counts() == {"new": RING_RECORDS - part, "already": part, "conflicts": 0,
                            "problems": 0}
    res = archive.import_plog(db, path, serial)     # and once more: nothing new
    assert res.counts() == {"new": 0, "already": RING_RECORDS, "conflicts": 0,
                            "problems": 0}
    assert_archived_once_and_chained(db, serial, log.read(1, RING_RECORDS))
    [summary] = archive.fleet_summary(db)
    assert (summary["records"], summary["gaps"], summary["alarms"]) == (RING_RECORDS, [], [])
    finished = [p["finished_s"] is not None for p in archive.pump_timeline(db, serial)["pulls"]]
    assert finished == [False, False, True, True, True]


def _two_pump_archive(tmp_path, db):
    """SN-A: active BATTERY LOW, no gaps; SN-B: a hole 101..130 and 5 conflicting copies;
    SN-C: clean."""
    log, _ = alarm_pump()
    archive.import_plog(db, plog(tmp_path, "a.plog", log.read(1, 1000)), "SN-A", model="AP-1")
    raws = pump_log(300).read(1, 1000)
    archive.import_plog(db, plog(tmp_path, "b.plog", raws[:100] + raws[130:]), "SN-B")
    other = el.EventLog(RamStorage(), Clock())
    for i in range(5):
        other.append(events.THERAPY_PAUSED, i)
    archive.import_plog(db, plog(tmp_path, "x.plog", other.read(1, 10)), "SN-B")
    archive.import_plog(db, plog(tmp_path, "c.plog", pump_log(40).read(1, 100)), "SN-C")
    return log


def test_fleet_list_answers_which_pumps_have_alarms_or_gaps_SR_SVC_5(tmp_path, db):
    _two_pump_archive(tmp_path, db)
    pick = lambda having: [r["serial"] for r in archive.fleet_summary(db, having=having)]  # noqa
    assert pick(()) == ["SN-A", "SN-B", "SN-C"]
    assert pick(("alarms",)) == ["SN-A"]
    assert pick(("gaps",)) == ["SN-B"] == pick(("conflicts",))
    assert pick(("alarms", "gaps")) == ["SN-A", "SN-B"]
    assert [r["serial"] for r in archive.fleet_summary(db, serial="SN-C")] == ["SN-C"]
    with pytest.raises(ValueError, match="unknown filter"):
        archive.fleet_summary(db, having=("bogus",))
    run = CliRunner()
    res = run.invoke(main, ["fleet", "list", "--db", db, "--alarms", "--gaps"])
    assert res.exit_code == 0, res.output
    assert "3 pumps archived: 1 with active alarms, 1 with gaps, 1 with conflicting" in \
        res.output
    assert "Pumps with alarms or gaps (2 of 3)" in res.output
    assert "SN-A" in res.output and "SN-B" in res.output and "SN-C" not in res.output
    assert "BATTERY LOW" in res.output and "101..130" in res.output
    res = run.invoke(main, ["fleet", "list", "--db", db, "--alarms"])
    assert res.exit_code == 0 and "SN-B" not in res.output and "SN-A" in res.output


def test_fleet_export_summary_and_records_csv_and_json_SR_SVC_5(tmp_path, db):
    import csv
    import json
    log = _two_pump_archive(tmp_path, db)
    run = CliRunner()
    out = str(tmp_path / "s.csv")
    res = run.invoke(main, ["fleet", "export", "--db", db, "--format", "csv", "--out", out])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out)))
    assert [r["serial"] for r in rows] == ["SN-A", "SN-B", "SN-C"]
    assert (rows[0]["model"], rows[0]["records"], rows[0]["active_alarms"]) == \
        ("AP-1", "26", "BATTERY LOW")
    assert (rows[1]["gaps"], rows[1]["conflicts"], rows[1]["active_alarms"]) == \
        ("101-130", "5", "")
    out = str(tmp_path / "s.json")
    res = run.invoke(main, ["fleet", "export", "--db", db, "--format", "json", "--out", out,
                            "--alarms", "--gaps"])
    assert res.exit_code == 0, res.output
    doc = json.load(open(out))
    assert [p["serial"] for p in doc["pumps"]] == ["SN-A", "SN-B"]
    assert doc["pumps"][0]["active_alarm_ids"] == [al.BATTERY_LOW]
    assert doc["pumps"][1]["gaps"] == [[101, 130]]
    # records: decoded as `pumpctl logs export` decodes them, with the raw bytes
    out = str(tmp_path / "r.csv")
    res = run.invoke(main, ["fleet", "export", "--db", db, "--what", "records", "--serial",
                            "SN-A", "--format", "csv", "--out", out])
    assert res.exit_code == 0, res.output
    assert "exported 26 records of 1 pump" in res.output
    rows = list(csv.DictReader(open(out)))
    assert [bytes.fromhex(r["raw"]) for r in rows] == [bytes(r) for r in log.read(1, 1000)]
    assert {r["serial"] for r in rows} == {"SN-A"}
    raised = [r for r in rows if r["event"] == "ALARM_RAISED"]
    assert [r["alarm_name"] for r in raised] == ["OCCLUSION DOWNSTREAM", "BATTERY LOW"]
    out = str(tmp_path / "r.json")
    res = run.invoke(main, ["fleet", "export", "--db", db, "--what", "records",
                            "--format", "json", "--out", out])
    assert res.exit_code == 0, res.output
    doc = json.load(open(out))
    assert [(p["serial"], p["record_count"], len(p["records"])) for p in doc["pumps"]] == \
        [("SN-A", 26, 26), ("SN-B", 270, 270), ("SN-C", 40, 40)]
    assert doc["pumps"][0]["model"] == "AP-1"
    assert [r["seq"] for r in doc["pumps"][1]["records"]][99:101] == [100, 131]
    res = run.invoke(main, ["fleet", "export", "--db", db, "--what", "records", "--format",
                            "json", "--out", "-", "--serial", "SN-C"])
    assert res.exit_code == 0 and json.loads(res.output)["pumps"][0]["record_count"] == 40
    # failures: a clear message and a non-zero exit, no partial output left behind
    res = run.invoke(main, ["fleet", "export", "--db", db, "--serial", "NOPE", "--out", out])
    assert res.exit_code == 1 and "pump NOPE is not in the archive" in res.output
    res = run.invoke(main, ["fleet", "export", "--db", db, "--out",
                            str(tmp_path / "no" / "dir.csv")])
    assert res.exit_code == 1 and "cannot write" in res.output
    assert not (tmp_path / "no").exists()
    res = run.invoke(main, ["fleet", "export", "--db", str(tmp_path / "none.sqlite"),
                            "--out", out])
    assert res.exit_code == 1 and "no fleet archive" in res.output
    res = run.invoke(main, ["fleet", "export", "--db", db, "--format", "xml", "--out", out])
    assert res.exit_code == 2


def test_serials_and_file_names_that_look_like_markup_are_printed_as_text_SR_SVC_5(tmp_path,
                                                                                   db):
    """rich would read "[/red]" in a serial as a closing tag (and fail): data is escaped."""
    serial = "SN[/red]X[bold]"
    path = plog(tmp_path, "[x].plog", pump_log(5).read(1, 10))
    run = CliRunner()
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", serial, path])
    assert res.exit_code == 0 and serial + ": 5 new" in res.output, res.output
    for args in (["list"], ["show", "--serial", serial]):
        res = run.invoke(main, ["fleet"] + args + ["--db", db])
        assert res.exit_code == 0 and serial in res.output, (args, res.output)
    assert "[x].plog" in res.output
    res = run.invoke(main, ["fleet", "import", "--db", db, "--serial", "S" * 65, path])
    assert res.exit_code == 1 and "longer than 64 characters" in res.output
