"""Fleet archive database: connection, tables, versioned migrations (SR-SVC-5).

SQLAlchemy 2.x Core only (no ORM), so the same statements run on SQLite (the embedded
default: a plain path given to ``--db`` becomes ``sqlite:///<path>``) and on PostgreSQL
(``postgresql+psycopg://...``).  The schema version lives in ``schema_version``: one row per
applied migration; ``open_archive()`` applies, in order and each in its own transaction, the
migrations in ``MIGRATIONS`` above the stored version.  A migration never changes once
released: a later change to a table is a new migration (explicit ALTERs), and migration 1
keeps creating the version-1 tables.
"""
import os
import time

import sqlalchemy as sa
from sqlalchemy import event

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_s", sa.BigInteger, nullable=False),      # host unix time
)

pumps = sa.Table(
    "pumps", metadata,
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(64)),
    sa.Column("first_seen_s", sa.BigInteger, nullable=False),   # host unix time, first import
    sa.Column("last_seen_s", sa.BigInteger, nullable=False),    # host unix time, last import
)

# u32 fields (seq, rtc_s, mono_ms, link) need BIGINT: PostgreSQL's INTEGER is signed 32-bit
records = sa.Table(
    "records", metadata,
    sa.Column("serial", sa.String(64), sa.ForeignKey("pumps.serial"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.Integer, nullable=False),
    sa.Column("rtc_s", sa.BigInteger, nullable=False),
    sa.Column("mono_ms", sa.BigInteger, nullable=False),
    sa.Column("a", sa.BigInteger, nullable=False),
    sa.Column("b", sa.BigInteger, nullable=False),
    sa.Column("link", sa.BigInteger, nullable=False),
    sa.Column("raw", sa.LargeBinary(32), nullable=False),
    sa.Index("ix_records_serial_type_seq", "serial", "type", "seq"),
)

pulls = sa.Table(
    "pulls", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("serial", sa.String(64), sa.ForeignKey("pumps.serial"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),               # the .plog file's name
    sa.Column("started_s", sa.BigInteger, nullable=False),
    sa.Column("finished_s", sa.BigInteger),                     # NULL: interrupted
    sa.Column("file_first_seq", sa.BigInteger),   # header: below it recycled before pulling
    sa.Column("first_seq", sa.BigInteger),
    sa.Column("last_seq", sa.BigInteger),
    sa.Column("records_in_file", sa.Integer, nullable=False, default=0),
    sa.Column("new", sa.Integer, nullable=False, default=0),
    sa.Column("already", sa.Integer, nullable=False, default=0),
    sa.Column("conflicts", sa.Integer, nullable=False, default=0),
    sa.Column("problems", sa.Integer, nullable=False, default=0),
    sa.Column("problem_text", sa.Text, nullable=False, default=""),
    sa.Index("ix_pulls_serial", "serial"),
)

# a record arriving with the key of an archived one but other bytes: kept as evidence,
# never written over the archived copy
conflicts = sa.Table(
    "conflicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pull_id", sa.Integer, sa.ForeignKey("pulls.id"), nullable=False),
    sa.Column("serial", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("raw", sa.LargeBinary(32), nullable=False),
    sa.Index("ix_conflicts_serial_seq", "serial", "seq"),
)


def _migration_1(conn):
    metadata.create_all(conn, tables=[pumps, records, pulls, conflicts])


# (version, description, function(connection)) in order; append only
MIGRATIONS = [
    (1, "pumps, records, pulls, conflicts", _migration_1),
]
LATEST = MIGRATIONS[-1][0]


class ArchiveError(Exception):
    """The archive cannot be opened or is of a schema this code does not know."""


def db_url(db):
    """``--db``: a SQLAlchemy URL as is, anything else a SQLite file path."""
    if "://" in db:
        return db
    return "sqlite:///" + os.path.abspath(db)


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(db):
    url = db_url(db)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as e:
        raise ArchiveError("cannot use database %s: %s" % (url, e))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def current_version(conn):
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    v = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    return v or 0


def migrate(engine):
    """Bring the schema to LATEST; returns the version.  Each migration and its
    ``schema_version`` row commit together."""
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        version = current_version(conn)
    if version > LATEST:
        raise ArchiveError("archive schema version %d is newer than this pumpctl knows (%d)"
                           % (version, LATEST))
    for v, description, fn in MIGRATIONS:
        if v <= version:
            continue
        with engine.begin() as conn:
            fn(conn)
            conn.execute(schema_version.insert().values(
                version=v, description=description, applied_s=int(time.time())))
        version = v
    return version


def open_archive(db, create=True):
    """An Engine on a migrated archive.  ``create=False``: a SQLite path that does not
    exist is an error (read-only commands must not leave empty files behind)."""
    if not isinstance(db, str):
        migrate(db)
        return db
    if not create and "://" not in db and not os.path.exists(db):
        raise ArchiveError("no fleet archive at %s" % db)
    engine = make_engine(db)
    try:
        migrate(engine)
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError("cannot open fleet archive %s: %s" % (db, e.__class__.__name__))
    return engine
