"""A throw-away PostgreSQL server for the fleet-archive tests and benchmark (SR-SVC-5).

Owns starting and stopping a private server: ``initdb`` into a temporary directory, then
``pg_ctl start`` listening on 127.0.0.1 on a free port and on a unix socket in the same
directory, trust authentication, stopped with ``pg_ctl stop -m fast`` and the directory
removed.  The server binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, package
``postgresql``, installed by ``make toolchain``); ``PG_BINDIR`` overrides the search.

``initdb`` refuses to run as root (CI runs as root): there the directory is given to the
``postgres`` system user (created by the Debian package) and the server programs run as
that user through ``runuser -u postgres --`` (``su postgres -c`` where ``runuser`` is
missing).

Use from a test module (no conftest needed)::

    from tests.pg_server import pg_server  # noqa: F401  (the session fixture)

    def test_x(pg_server):
        url = pg_server.new_database()      # an empty database of its own

The fixture is session-scoped and the server is shared by every module that imports it
(reference-counted, started once, stopped when the last module's fixture is finalised, and
at interpreter exit or on SIGTERM as a safety net; a SIGKILLed run leaves the server and its
``fleet-pg-*`` directory behind).  It skips the test, with the reason, only when the
server binaries are not installed; any other failure to start is an error.
"""
import atexit
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

try:
    import pytest
except ImportError:                 # the benchmark runs without pytest
    pytest = None

PG_USER = "postgres"            # the superuser created by initdb (and the Debian system user)


class PgUnavailable(Exception):
    """The PostgreSQL server binaries are not installed: a reason to skip, not a failure."""


def find_bindir():
    """The directory holding initdb and pg_ctl (newest Debian version first)."""
    cands = []
    if os.environ.get("PG_BINDIR"):
        cands.append(os.environ["PG_BINDIR"])

    def version(d):
        v = os.path.basename(os.path.dirname(d))
        return tuple(int(p) for p in v.split(".") if p.isdigit())
    cands += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        cands.append(os.path.dirname(on_path))
    for d in cands:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in ("initdb", "pg_ctl")):
            return d
    raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found in "
                        "/usr/lib/postgresql/*/bin, $PG_BINDIR or PATH: install the Debian "
                        "package 'postgresql' (make toolchain)")


def _server_parent(as_root):
    """Where the server's directory goes: the temporary directory, unless (as root) the
    ``postgres`` user could not reach it or it is too long for the unix socket path
    (107 bytes on Linux): then /tmp."""
    base = tempfile.gettempdir()
    if len(base) > 60:
        return "/tmp"
    if as_root:
        d = os.path.abspath(base)
        while True:
            if not os.stat(d).st_mode & 0o001:       # not searchable by others
                return "/tmp"
            if d == os.path.dirname(d):
                break
            d = os.path.dirname(d)
    return base


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One private server.  ``durable=False`` (tests) turns fsync off; the benchmark
    keeps PostgreSQL's defaults."""

    def __init__(self, durable=False):
        self.bindir = find_bindir()
        self.durable = durable
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.owner = pwd.getpwnam(PG_USER)
            except KeyError:
                raise PgUnavailable("running as root and there is no '%s' system user to run "
                                    "initdb as (the Debian package creates it)" % PG_USER)
        self.tmp = None
        self.port = None
        self.running = False
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    # ---- processes ----------------------------------------------------------------------
    def _cmd(self, prog, *args):
        cmd = [os.path.join(self.bindir, prog)] + list(args)
        if not self.as_root:
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", PG_USER, "--"] + cmd
        import shlex
        return ["su", PG_USER, "-s", "/bin/sh", "-c", " ".join(shlex.quote(c) for c in cmd)]

    def _run(self, prog, *args, timeout=120):
        cmd = self._cmd(prog, *args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, cwd=self.tmp)
        if p.returncode:
            raise RuntimeError("%s failed (exit %d): %s\n%s" % (
                prog, p.returncode, " ".join(cmd), p.stdout.decode(errors="replace")[-3000:]))
        return p.stdout.decode(errors="replace")

    def start(self, attempts=3):
        self.tmp = tempfile.mkdtemp(prefix="fleet-pg-", dir=_server_parent(self.as_root))
        if self.as_root:
            os.chown(self.tmp, self.owner.pw_uid, self.owner.pw_gid)
        self.data = os.path.join(self.tmp, "data")
        self.log = os.path.join(self.tmp, "server.log")
        try:
            self._run("initdb", "-D", self.data, "-U", PG_USER, "-A", "trust", "-E", "UTF8",
                      "--no-locale", "--no-sync")
            opts = ["-c listen_addresses=127.0.0.1", "-c unix_socket_directories=%s" % self.tmp,
                    "-c max_connections=50", "-c shared_buffers=128MB"]
            if not self.durable:
                opts += ["-c fsync=off", "-c synchronous_commit=off",
                         "-c full_page_writes=off"]
            for attempt in range(attempts):      # the free port may be taken meanwhile
                self.port = _free_port()
                try:
                    self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                              "-o", " ".join(opts + ["-p %d" % self.port]), "start")
                    break
                except RuntimeError:
                    if attempt == attempts - 1:
                        raise RuntimeError("PostgreSQL did not start; server log:\n"
                                           + self.server_log())
            self.running = True
        except BaseException:
            self.stop()
            raise
        return self

    def server_log(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return "(no server log)"

    def stop(self):
        # also after a start that failed or timed out: a postmaster.pid left in the data
        # directory means a server may still be running there
        if self.running or (self.tmp and os.path.exists(
                os.path.join(self.data, "postmaster.pid"))):
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            self.running = False
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    # ---- databases ----------------------------------------------------------------------
    def url(self, dbname="postgres"):
        return "postgresql+psycopg://%s@127.0.0.1:%d/%s" % (PG_USER, self.port, dbname)

    def admin(self, sql):
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER,
                             dbname="postgres", autocommit=True) as c:
            c.execute(sql)

    def new_database(self, prefix="fleet"):
        """The URL of a new empty database."""
        with self._lock:
            name = "%s_%d" % (prefix, next(self._names))
        self.admin("CREATE DATABASE %s" % name)
        return self.url(name)


# ---- the shared session server ----------------------------------------------------------
_shared = {"server": None, "users": 0}


def _stop_shared():
    srv = _shared["server"]
    _shared["server"] = None
    if srv is not None:
        srv.stop()


atexit.register(_stop_shared)


def _on_sigterm(signum, frame):
    """SIGTERM (a CI job timeout, ``timeout``, ``kill``) skips atexit: stop the server
    first, then die of the signal as before."""
    _stop_shared()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _guard_sigterm():
    """pg_ctl's server is not our child: a killed test run would leave it running.  Only
    where nobody else handles SIGTERM and only from the main thread."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def acquire():
    if _shared["server"] is None:
        _guard_sigterm()
        _shared["server"] = PgServer().start()
    _shared["users"] += 1
    return _shared["server"]


def release():
    _shared["users"] -= 1
    if _shared["users"] <= 0:
        _shared["users"] = 0
        _stop_shared()


if pytest is not None:
    @pytest.fixture(scope="session")
    def pg_server():
        """A running PgServer for the whole session (skips if PostgreSQL is not installed)."""
        try:
            srv = acquire()
        except PgUnavailable as e:
            pytest.skip("PostgreSQL tests skipped: %s" % e)
        try:
            yield srv
        finally:
            release()
