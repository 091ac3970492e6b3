"""``pumpctl fleet serve``: the read-only web page over the fleet archive (SR-SVC-6).

The app is ``host_tools/fleet/web.py``; this is only the command (registered at the end of
``host_tools/fleet/cli.py``).  Flask is imported when the command runs, so the other
``pumpctl`` commands do not pay for it.  Binds 127.0.0.1 unless ``--host`` says otherwise:
the page has no login, and anyone who can reach it reads which pumps are in alarm.
"""
import ipaddress

import click

DB_HELP = "archive: a SQLite file path or a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)"


def _loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown_db(db):
    """``--db`` for the terminal: a URL's password masked."""
    if "://" not in db:
        return db
    try:
        import sqlalchemy as sa
        return sa.engine.make_url(db).render_as_string(hide_password=True)
    except Exception:           # noqa: BLE001 - an odd URL is shown without its credentials
        return db.split("://", 1)[0] + "://..."


@click.command("serve")
@click.option("--db", required=True, help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (the page has no login: keep it on loopback "
                   "unless a reverse proxy in front of it authenticates)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port)")
def serve(db, host, port):
    """Serve a read-only web page over the archive: pumps with alarms or gaps first, each
    pump's timeline (plot and recent events).  Ctrl-C stops it."""
    from werkzeug.serving import make_server

    from host_tools.fleet import db as fdb
    from host_tools.fleet.web import create_app
    # on loopback only loopback names are answered (DNS rebinding: a hostile page whose
    # name now resolves to 127.0.0.1 must not read the fleet's alarms)
    allowed = None
    if _loopback(host):
        allowed = {"localhost", "127.0.0.1", "[::1]",
                   "[%s]" % host if ":" in host else host}
    try:
        app = create_app(db, allowed_hosts=allowed)
    except fdb.ArchiveError as e:
        raise click.ClickException(str(e))
    try:
        server = make_server(host, port, app, threaded=True)
    except (OSError, SystemExit) as e:          # werkzeug exits on a port in use
        raise click.ClickException("cannot listen on %s:%d: %s" % (host, port, e))
    if not _loopback(host):
        click.echo("warning: listening on %s: the page has no login; anyone who can reach "
                   "this address can read the fleet's alarms" % host, err=True)
    shown = "[%s]" % host if ":" in host else host
    click.echo("serving fleet archive %s read-only on http://%s:%d/ (Ctrl-C to stop)" % (
        _shown_db(db), shown, server.server_port))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
