"""``pumpctl fleet``: import pulled logs into the fleet archive, list pumps with alarms or
gaps, show one pump's timeline (SR-SVC-5).  Registered in ``host_tools/pumpctl/cli.py``.

Exit codes: 0 done; 1 an import that archived what it could but found verify problems or
conflicting records, or any failure (unreadable file, archive, unknown pump), each with a
message; 2 usage errors (click).
"""
import time

import click
from rich.console import Console
from rich.table import Table

from host_tools.fleet import archive
from host_tools.fleet import db as fdb
from host_tools.pumpctl import logfile

console = Console()

DB_HELP = "archive: a SQLite file path or a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)"


def _when(unix_s):
    if unix_s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(unix_s))


def _ranges(rs, most=4):
    text = ", ".join("%d" % lo if lo == hi else "%d..%d" % (lo, hi) for lo, hi in rs[:most])
    if len(rs) > most:
        text += " (+%d more)" % (len(rs) - most)
    return text


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
    c = res.counts()
    console.print("%s: %d new, %d already archived, %d conflicts, %d problems (pull %d)" % (
        serial, c["new"], c["already"], c["conflicts"], c["problems"], res.pull_id),
        highlight=False)
    for p in res.problems:
        console.print("PROBLEM %s: %s" % (p.kind.upper(), p.message), highlight=False)
    if res.skipped:
        console.print("not archived (edited): seq %s" % ", ".join(map(str, res.skipped)),
                      highlight=False)
    for seq in res.conflicts:
        console.print("CONFLICT: record seq %d differs from the archived copy (kept the "
                      "archived one)" % seq, highlight=False)
    if not res.ok:
        raise SystemExit(1)


@fleet.command("list")
@click.option("--db", required=True, help=DB_HELP)
def list_cmd(db):
    """Pumps in the archive with their active alarms and unexplained gaps."""
    try:
        rows = archive.fleet_summary(db)
    except fdb.ArchiveError as e:
        raise click.ClickException(str(e))
    if not rows:
        console.print("no pumps archived yet")
        return
    table = Table(title="Fleet archive (%d pumps)" % len(rows))
    for col in ("pump", "records", "last seen", "last record", "active alarms", "gaps"):
        table.add_column(col)
    for r in rows:
        alarms = ", ".join(archive.alarm_label(a) for a in r["alarms"]) or "none"
        table.add_row(r["serial"] + (" (%s)" % r["model"] if r["model"] else ""),
                      "%d (seq %s..%s)" % (r["records"], r["first_seq"], r["last_seq"])
                      if r["records"] else "0",
                      _when(r["last_seen_s"]), _when(r["last_rtc_s"]),
                      "[red]%s[/red]" % alarms if r["alarms"] else alarms,
                      "[yellow]%s[/yellow]" % _ranges(r["gaps"]) if r["gaps"] else "none")
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
    if t is None:
        raise click.ClickException("pump %s is not in the archive" % serial)
    console.print("pump %s%s: %d records, seq %s..%s, %s .. %s (pump clock)" % (
        serial, " (%s)" % t["model"] if t["model"] else "", t["records"], t["first_seq"],
        t["last_seq"], _when(t["first_rtc_s"]), _when(t["last_rtc_s"])), highlight=False)
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
        pulls.add_row(str(p["id"]), p["source"], _when(p["started_s"]) +
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
