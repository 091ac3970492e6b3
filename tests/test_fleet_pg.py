"""Fleet archive: what depends on the database server (SR-SVC-5).

The test PostgreSQL server itself (``tests/pg_server.py``: Debian's binaries, run as the
``postgres`` user when we are root, loopback and a private unix socket, trust auth),
several processes opening and importing into one archive at once (the migration lock and
the insert race, on PostgreSQL and on SQLite), u32 fields at their limits, and the CLI's
messages for a server that is not there.  The behaviour common to both databases is in
``tests/test_fleet_archive.py`` (every test there runs on both).
"""
import os
import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from firmware import eventlog as el
from firmware import events
from hal.ram_storage import RamStorage
from host_tools.fleet import archive
from host_tools.fleet import db as fdb
from host_tools.pumpctl.cli import main
from tests.pg_server import PG_USER, find_bindir, pg_server  # noqa: F401  (session fixture)
from tests.test_fleet_archive import archived, db, plog, pump_log  # noqa: F401  (fixture)


def test_the_suite_starts_its_own_postgresql_server_SR_SVC_5(pg_server):
    assert os.path.isfile(os.path.join(find_bindir(), "initdb"))
    url = pg_server.new_database()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            assert conn.execute(sa.text("SHOW port")).scalar() == str(pg_server.port)
            assert conn.execute(sa.text("SELECT current_user")).scalar() == PG_USER
            assert conn.execute(sa.text("SHOW server_version_num")).scalar() >= "100000"
    finally:
        engine.dispose()
    assert os.path.exists(os.path.join(pg_server.tmp, ".s.PGSQL.%d" % pg_server.port))
    if os.geteuid() == 0:           # initdb refuses root: the cluster belongs to postgres
        import pwd
        assert pwd.getpwuid(os.stat(pg_server.data).st_uid).pw_name == PG_USER


def _at_once(n, fn):
    """Run fn(i) in n threads released together; re-raise the first failure."""
    gate = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            gate.wait()
            results[i] = fn(i)
        except BaseException as e:          # noqa: B902 - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


def test_processes_opening_a_new_archive_at_once_migrate_it_once_SR_SVC_5(db):
    """The migration lock (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE): each
    migration applied once, nobody fails."""
    engines = [fdb.make_engine(db, shared=False) for _ in range(4)]
    try:
        versions = _at_once(4, lambda i: fdb.migrate(engines[i]))
        assert versions == [fdb.LATEST] * 4
        with engines[0].connect() as conn:
            rows = conn.execute(sa.select(fdb.schema_version.c.version)).scalars().all()
        assert sorted(rows) == [v for v, _, _ in fdb.MIGRATIONS]
    finally:
        for e in engines:
            e.dispose()


def test_imports_of_overlapping_pulls_at_once_archive_each_record_once_SR_SVC_5(tmp_path, db):
    """Two stations import overlapping pulls of one pump and a third another pump, at the
    same time: every record once, counted once as new, no conflicts."""
    raws = pump_log(3000).read(1, 100000)
    files = [plog(tmp_path, "a.plog", raws[:2000]), plog(tmp_path, "b.plog", raws[1000:]),
             plog(tmp_path, "c.plog", raws)]
    fdb.open_archive(db)
    engines = [fdb.make_engine(db, shared=False) for _ in range(3)]
    try:
        res = _at_once(3, lambda i: archive.import_plog(
            engines[i], files[i], "SN-X" if i < 2 else "SN-Y", batch=200))
    finally:
        for e in engines:
            e.dispose()
    a, b, c = res
    assert a.conflicts == b.conflicts == c.conflicts == []
    assert (a.new + a.already, b.new + b.already) == (2000, 2000)
    assert a.new + b.new == 3000 and c.new == 3000
    assert [bytes(r) for _, r in archived(db, "SN-X")] == [bytes(r) for r in raws]
    assert [bytes(r) for _, r in archived(db, "SN-Y")] == [bytes(r) for r in raws]


class _FarClock:
    """A pump clock at the top of the u32 range (RTC and monotonic ms)."""

    def ticks_ms(self):
        return 0xFFFFFFFE

    def rtc_s(self):
        return 0xFFFFFFF0


def test_u32_fields_and_i32_arguments_keep_their_values_SR_SVC_5(tmp_path, db):
    """BIGINT columns: PostgreSQL's INTEGER would overflow at 2**31."""
    log = el.EventLog(RamStorage(), _FarClock())
    log.append(events.POWER_ON)
    log.append(events.RATE_CHANGED, -0x80000000, 0x7FFFFFFF)
    archive.import_plog(db, plog(tmp_path, "far.plog", log.read(1, 10)), "SN-FAR")
    engine = fdb.open_archive(db)
    t = fdb.records
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.seq, t.c.rtc_s, t.c.mono_ms, t.c.a, t.c.b, t.c.link)
                            .order_by(t.c.seq)).all()
    assert [tuple(r[:5]) for r in rows] == [(1, 0xFFFFFFF0, 0xFFFFFFFE, 0, 0),
                                            (2, 0xFFFFFFF0, 0xFFFFFFFE, -0x80000000,
                                             0x7FFFFFFF)]
    assert [r[5] for r in rows] == [int.from_bytes(el.link_of(r), "little")
                                    for r in log.read(1, 10)]
    assert archive.fleet_summary(db)[0]["last_rtc_s"] == 0xFFFFFFF0


def test_cli_on_a_postgresql_url_and_on_a_server_that_is_not_there_SR_SVC_5(tmp_path,
                                                                             pg_server):
    run = CliRunner()
    url = pg_server.new_database()
    res = run.invoke(main, ["fleet", "list", "--db", url])    # an empty database: no archive
    assert res.exit_code == 1 and "no fleet archive in" in res.output
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:                          # and list created nothing
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()
    path = plog(tmp_path, "p.plog", pump_log(120).read(1, 1000))
    res = run.invoke(main, ["fleet", "import", "--db", url, "--serial", "SN-PG", path])
    assert res.exit_code == 0 and "SN-PG: 120 new" in res.output, res.output
    res = run.invoke(main, ["fleet", "list", "--db", url])
    assert res.exit_code == 0 and "SN-PG" in res.output and "120 (1..120)" in res.output
    res = run.invoke(main, ["fleet", "show", "--db", url, "--serial", "SN-PG"])
    assert res.exit_code == 0 and "120 records" in res.output
    # nobody listens on port 1; the password never appears in a message
    gone = "postgresql+psycopg://fleet:s3cret@127.0.0.1:1/fleet"
    for args in (["list"], ["show", "--serial", "SN-PG"], ["export", "--out", "-"],
                 ["import", "--serial", "SN-PG", path]):
        res = run.invoke(main, ["fleet"] + args + ["--db", gone])
        assert res.exit_code == 1, (args, res.output)
        assert "cannot open fleet archive postgresql+psycopg://fleet:***@127.0.0.1:1/fleet" \
            in res.output and "s3cret" not in res.output
        assert "Traceback" not in res.output
    res = run.invoke(main, ["fleet", "list", "--db", "mysql://u@localhost/x"])
    assert res.exit_code == 1 and "cannot use database" in res.output


def test_missing_server_binaries_are_a_skip_reason_not_a_failure_SR_SVC_5(monkeypatch):
    """Where PostgreSQL is not installed the PostgreSQL cases skip, saying why."""
    from tests import pg_server as ps
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setattr(ps.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(ps.shutil, "which", lambda name: None)
    with pytest.raises(ps.PgUnavailable, match="install the Debian package 'postgresql'"):
        ps.find_bindir()
