"""``pumpctl fleet``: import pulled logs into the fleet archive, list pumps with alarms or
gaps, show one pump's timeline, export the archive (SR-SVC-5).  Registered in
``host_tools/pumpctl/cli.py``.  The work is done in ``archive.py``; this module owns the
command-line surface only.

Exit codes: 0 done; 1 an import that archived what it could but found verify problems or
conflicting records, or any failure (unreadable file, archive, unknown pump, unwritable
output), each with a message; 2 usage errors (click).
"""
import os
import sys

import click
import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from host_tools.fleet import archive
from host_tools.fleet import db as fdb
from host_tools.pumpctl import logfile

console = Console()

DB_HELP = "archive: a SQLite file path or a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)"


def _db_failure(db, e):
    """A database error after the archive was opened (server gone, permissions): one line."""
    return click.ClickException("fleet archive %s: %s" % (fdb.describe(db), fdb.reason(e)))


_when = archive.when_text


def _ranges(rs, most=4):
    return archive.ranges_text(rs, most)


@click.group("fleet")
def fleet():
    """Fleet archive of pulled pump logs (SQLite by default)."""


@fleet.command("import")
@click.option("--db", required=True, help=DB_HELP)
@click.option("--serial", required=True, help="the pump's serial number")
@click.option("--model", default=None, help="pump model, recorded with the serial")
@click.argument("plog", type=click.Path(dir_okay=False))
def import_cmd(db, serial, model, plog):
    """Archive a pulled log (.plog): each record once, verified on insert."""
    try:
        res = archive.import_plog(db, plog, serial, model=model)
    except (logfile.LogFileError, fdb.ArchiveError, ValueError) as e:
        raise click.ClickException(str(e))
    except sa.exc.SQLAlchemyError as e:
        raise _db_failure(db, e)
    c = res.counts()
    console.print("%s: %d new, %d already archived, %d conflicts, %d problems (pull %d)" % (
        serial, c["new"], c["already"], c["conflicts"], c["problems"], res.pull_id),
        highlight=False, markup=False)
    for p in res.problems:
        console.print("PROBLEM %s: %s" % (p.kind.upper(), p.message), highlight=False,
                      markup=False)
    if res.skipped:
        console.print("not archived (edited): seq %s" % ", ".join(map(str, res.skipped)),
                      highlight=False)
    for seq in res.conflicts:
        console.print("CONFLICT: record seq %d differs from the archived copy (kept the "
                      "archived one)" % seq, highlight=False)
    if not res.ok:
        raise SystemExit(1)


def _having(alarms, gaps, conflicts):
    return tuple(k for k, on in (("alarms", alarms), ("gaps", gaps),
                                 ("conflicts", conflicts)) if on)


def _filter_options(f):
    f = click.option("--conflicts", is_flag=True,
                     help="only pumps with conflicting copies of records")(f)
    f = click.option("--gaps", is_flag=True, help="only pumps with unexplained gaps")(f)
    f = click.option("--alarms", is_flag=True, help="only pumps with active alarms")(f)
    return f


@fleet.command("list")
@click.option("--db", required=True, help=DB_HELP)
@_filter_options
def list_cmd(db, alarms, gaps, conflicts):
    """Pumps in the archive with their active alarms and unexplained gaps.

    --alarms / --gaps / --conflicts: only the pumps with any of those (--alarms --gaps:
    the pumps with alarms or gaps)."""
    having = _having(alarms, gaps, conflicts)
    try:
        everything = archive.fleet_summary(db)
    except fdb.ArchiveError as e:
        raise click.ClickException(str(e))
    except sa.exc.SQLAlchemyError as e:
        raise _db_failure(db, e)
    rows = [r for r in everything if not having or any(r[k] for k in having)]
    n_alarms = sum(1 for r in everything if r["alarms"])
    n_gaps = sum(1 for r in everything if r["gaps"])
    n_conf = sum(1 for r in everything if r["conflicts"])
    console.print("%d pumps archived: %d with active alarms, %d with gaps, %d with "
                  "conflicting records" % (len(everything), n_alarms, n_gaps, n_conf),
                  highlight=False)
    if not everything:
        console.print("no pumps archived yet")
        return
    if not rows:
        console.print("no pump has %s" % " or ".join(
            {"alarms": "active alarms", "gaps": "gaps",
             "conflicts": "conflicting records"}[k] for k in having), highlight=False)
        return
    title = "Fleet archive (%d pumps)" % len(rows)
    if having:
        title = "Pumps with %s (%d of %d)" % (" or ".join(having), len(rows), len(everything))
    table = Table(title=title)
    table.add_column("pump", no_wrap=True)
    table.add_column("records (seq)")
    table.add_column("last pulled", no_wrap=True)
    table.add_column("active alarms")
    table.add_column("gaps")
    show_conflicts = any(r["conflicts"] for r in rows)
    if show_conflicts:
        table.add_column("conflicts")
    for r in rows:
        alarms_text = ", ".join(archive.alarm_label(a) for a in r["alarms"]) or "none"
        # serials, models and file names are data, not rich markup ("[/x]" would raise)
        cells = [escape(r["serial"] + (" (%s)" % r["model"] if r["model"] else "")),
                 "%d (%s..%s)" % (r["records"], r["first_seq"], r["last_seq"])
                 if r["records"] else "0",
                 _when(r["last_seen_s"])[:10],
                 "[red]%s[/red]" % alarms_text if r["alarms"] else alarms_text,
                 "[yellow]%s[/yellow]" % _ranges(r["gaps"]) if r["gaps"] else "none"]
        if show_conflicts:
            cells.append("[red]%d[/red]" % r["conflicts"] if r["conflicts"] else "0")
        table.add_row(*cells)
    console.print(table)


@fleet.command("show")
@click.option("--db", required=True, help=DB_HELP)
@click.option("--serial", required=True, help="the pump's serial number")
@click.option("--limit", default=50, show_default=True, help="notable events shown")
def show_cmd(db, serial, limit):
    """One pump's timeline: pulls, notable events, alarms, gaps."""
    try:
        t = archive.pump_timeline(db, serial, limit=limit)
    except fdb.ArchiveError as e:
        raise click.ClickException(str(e))
    except sa.exc.SQLAlchemyError as e:
        raise _db_failure(db, e)
    if t is None:
        raise click.ClickException("pump %s is not in the archive" % serial)
    console.print("pump %s%s: %d records, seq %s..%s, %s .. %s (pump clock)" % (
        serial, " (%s)" % t["model"] if t["model"] else "", t["records"], t["first_seq"],
        t["last_seq"], _when(t["first_rtc_s"]), _when(t["last_rtc_s"])), highlight=False,
        markup=False)
    console.print("active alarms: %s" % (
        ", ".join(archive.alarm_label(a) for a in t["alarms"]) or "none"), highlight=False)
    console.print("gaps: %s" % (_ranges(t["gaps"], most=20) or "none"), highlight=False)
    if t["conflicts"]:
        console.print("conflicting copies received for seq %s" % ", ".join(
            map(str, t["conflicts"])), highlight=False)
    pulls = Table(title="Pulls")
    for col in ("#", "file", "imported", "seq", "new", "already", "conflicts", "problems"):
        pulls.add_column(col)
    for p in t["pulls"]:
        pulls.add_row(str(p["id"]), escape(p["source"]), _when(p["started_s"]) +
                      ("" if p["finished_s"] else " (interrupted)"),
                      "%s..%s" % (p["first_seq"], p["last_seq"]), str(p["new"]),
                      str(p["already"]), str(p["conflicts"]), str(p["problems"]))
    console.print(pulls)
    ev = Table(title="Timeline (last %d notable events)" % limit)
    for col in ("seq", "pump time", "event", "detail"):
        ev.add_column(col)
    for e in t["events"]:
        detail = ""
        if e["type_name"].startswith("ALARM_"):
            detail = archive.alarm_label(e["a"])
        elif e["type_name"] == "LOG_SEGMENT_RECYCLED":
            detail = "first kept seq %d" % e["a"]
        elif e["type_name"] == "THERAPY_PROGRAMMED":
            detail = "%.1f mL/h, VTBI %.1f mL" % (e["a"] / 1000.0, e["b"] / 1000.0)
        ev.add_row(str(e["seq"]), _when(e["rtc_s"]), e["type_name"], detail)
    console.print(ev)


@fleet.command("export")
@click.option("--db", required=True, help=DB_HELP)
@click.option("--serial", "serials", multiple=True,
              help="only this pump (repeatable; default: every pump)")
@click.option("--what", type=click.Choice(archive.EXPORT_KINDS), default="summary",
              show_default=True,
              help="summary: one row per pump (records, range, alarms, gaps, conflicts); "
                   "records: every archived record, decoded, with its raw bytes")
@click.option("--format", "fmt", type=click.Choice(archive.EXPORT_FORMATS), default="csv",
              show_default=True)
@click.option("--out", required=True, help="output file ('-': standard output)")
@_filter_options
def export_cmd(db, serials, what, fmt, out, alarms, gaps, conflicts):
    """Export the archive as CSV or JSON: a per-pump summary or the records.

    --alarms / --gaps / --conflicts: only the pumps with any of those."""
    having = _having(alarms, gaps, conflicts)
    try:
        rows = archive.fleet_summary(db)
    except fdb.ArchiveError as e:
        raise click.ClickException(str(e))
    except sa.exc.SQLAlchemyError as e:
        raise _db_failure(db, e)
    known = {r["serial"] for r in rows}
    missing = [s for s in serials if s not in known]
    if missing:
        raise click.ClickException("pump %s is not in the archive" % ", ".join(missing))
    if serials:
        rows = [r for r in rows if r["serial"] in serials]
    if having:
        rows = [r for r in rows if any(r[k] for k in having)]
    chosen = [r["serial"] for r in rows]

    def write(f):
        if what == "summary":
            return archive.write_summary(rows, fmt, f)
        return archive.write_records(db, fmt, f, serials=chosen)
    try:
        if out == "-":
            n = write(sys.stdout)
        else:
            tmp = "%s.tmp" % out
            try:
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    n = write(f)
                os.replace(tmp, out)
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
    except OSError as e:
        raise click.ClickException("cannot write %s: %s" % (out, e.strerror or e))
    except fdb.ArchiveError as e:
        raise click.ClickException(str(e))
    except sa.exc.SQLAlchemyError as e:
        raise _db_failure(db, e)
    if out != "-":
        click.echo("exported %d %s of %d pump%s to %s (%s)" % (
            n, "pump summaries" if what == "summary" else "records", len(chosen),
            "" if len(chosen) == 1 else "s", out, fmt), err=True)


from host_tools.fleet.web_cli import serve  # noqa: E402  (pumpctl fleet serve, SR-SVC-6)
fleet.add_command(serve)
