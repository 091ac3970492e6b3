"""Fleet archive database: connection, tables, versioned migrations (SR-SVC-5).

SQLAlchemy 2.x Core only (no ORM), so the same statements run on SQLite (the embedded
default: a plain path given to ``--db`` becomes ``sqlite:///<path>``) and on PostgreSQL
(``postgresql+psycopg://...``, psycopg 3).  ``make_engine`` keeps one Engine per URL and
process; on SQLite it makes transactions real (explicit BEGIN, see ``_sqlite_connect``) and
``writer()`` gives connections whose transactions take the write lock first.

The schema version lives in ``schema_version``: one row per applied migration;
``open_archive()`` applies, in order and each in its own exclusive transaction (PostgreSQL
advisory lock / SQLite BEGIN IMMEDIATE), the migrations in ``MIGRATIONS`` above the stored
version.  A migration never changes once released: a later change to a table is a new
migration (explicit ALTERs), and migration 1 keeps creating the version-1 tables.
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


def _migration_2(conn):
    # the fleet-wide questions select by event type across every pump (alarms raised and
    # cleared, power-on, recycle markers): without it they read the whole records table
    conn.execute(sa.text("CREATE INDEX ix_records_type_serial_seq ON records (type, serial, seq)"))


# (version, description, function(connection)) in order; append only
MIGRATIONS = [
    (1, "pumps, records, pulls, conflicts", _migration_1),
    (2, "index records (type, serial, seq) for the fleet-wide questions", _migration_2),
]
LATEST = MIGRATIONS[-1][0]


class ArchiveError(Exception):
    """The archive cannot be opened or is of a schema this code does not know."""


def db_url(db):
    """``--db``: a SQLAlchemy URL as is, anything else a SQLite file path."""
    if "://" in db:
        return db
    return "sqlite:///" + os.path.abspath(db)


def describe(db):
    """``db`` for messages: the URL without its password."""
    try:
        return sa.engine.make_url(db_url(db)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return db


def reason(exc):
    """The first line of a database error, for a message (no SQL, no traceback)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


# pysqlite, left to itself, does not BEGIN before DDL or SELECT, so a migration's CREATE /
# ALTER statements would each commit on their own.  The driver's own transaction handling is
# turned off and every SQLAlchemy transaction starts with an explicit BEGIN (the recipe of
# the SQLAlchemy SQLite dialect documentation); ``writer()`` connections (imports,
# migrations) ask for BEGIN IMMEDIATE (the write lock first) with the execution option
# ``fleet_begin``.
def _sqlite_connect(dbapi_conn, _record):
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn):
    conn.exec_driver_sql(conn.get_execution_options().get("fleet_begin", "BEGIN"))


SUPPORTED = ("sqlite", "postgresql")
_engines = {}


def make_engine(db, shared=True):
    """An Engine for ``--db`` (one per URL and process, reused; ``shared=False``: a new one,
    as another process would have)."""
    url = db_url(db)
    if shared and url in _engines:
        return _engines[url]
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as e:
        raise ArchiveError("cannot use database %s: %s" % (describe(db), e))
    if engine.dialect.name not in SUPPORTED:
        raise ArchiveError("database %s is not supported: use SQLite or PostgreSQL"
                           % engine.dialect.name)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    if shared:
        _engines[url] = engine
    return engine


def dispose_all():
    """Close every pooled connection (tests, before a database is dropped)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


# any constant: the key of the PostgreSQL advisory lock taken by migrations
_MIGRATION_LOCK = 0x5F1EE7A2


def writer(engine):
    """A Connection whose transactions write: on SQLite they start with BEGIN IMMEDIATE (the
    database's write lock taken first, waiting up to the 5 s busy timeout), so two writers
    queue instead of one failing with "database is locked" when both read first and then
    both try to write.  PostgreSQL: a plain connection (row locks and ON CONFLICT)."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.execution_options(fleet_begin="BEGIN IMMEDIATE")
    return conn


def current_version(conn):
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    v = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    return v or 0


def migrate(engine):
    """Bring the schema to LATEST; returns the version.  Each migration and its
    ``schema_version`` row commit together, under a lock, the version read again inside
    it: two processes opening a new archive at once apply each migration once."""
    with engine.connect() as conn:                  # the usual case: nothing to do, no lock
        version = current_version(conn)
    if version == LATEST:
        return version
    while True:
        with writer(engine) as conn, conn.begin():
            if conn.dialect.name == "postgresql":       # SQLite: BEGIN IMMEDIATE
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                             {"k": _MIGRATION_LOCK})
            schema_version.create(conn, checkfirst=True)
            version = current_version(conn)
            if version > LATEST:
                raise ArchiveError("archive schema version %d is newer than this pumpctl "
                                   "knows (%d)" % (version, LATEST))
            pending = [m for m in MIGRATIONS if m[0] > version]
            if not pending:
                return version
            v, description, fn = pending[0]
            fn(conn)
            conn.execute(schema_version.insert().values(
                version=v, description=description, applied_s=int(time.time())))


def _sqlite_file(db):
    """The file of a SQLite ``--db`` (a path or a ``sqlite:///`` URL); None for another
    database or an in-memory one (connecting to a SQLite URL creates its file)."""
    if "://" not in db:
        return db
    try:
        url = sa.engine.make_url(db)
    except sa.exc.ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def open_archive(db, create=True):
    """An Engine on a migrated archive.  ``db``: a SQLite path, a SQLAlchemy URL or an
    Engine.  ``create=False`` (read-only commands): a SQLite path that does not exist, or a
    database holding no archive yet, is an error, and nothing is created."""
    if not isinstance(db, str):
        migrate(db)
        return db
    if not create:
        path = _sqlite_file(db)
        if path is not None and not os.path.exists(path):
            raise ArchiveError("no fleet archive at %s" % db)
    engine = make_engine(db)
    try:
        if not create:
            with engine.connect() as conn:
                if current_version(conn) == 0:
                    raise ArchiveError("no fleet archive in %s (nothing imported yet)"
                                       % describe(db))
        migrate(engine)
    except sa.exc.SQLAlchemyError as e:
        raise ArchiveError("cannot open fleet archive %s: %s" % (describe(db), reason(e)))
    return engine
