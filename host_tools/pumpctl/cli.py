"""pumpctl: the technicians' and pharmacists' command-line tool (SR-SVC-3).

Owns the user-facing commands: ``status``, ``logs pull``, ``sim``, ``deploy``
(its logic is in ``deploy.py``).  Every failure prints a message naming the
problem and exits non-zero; long transfers show a progress bar.
"""
import csv
import os
import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

import safety_core as sc
from firmware import alarms as al
from firmware import eventlog, events
from host_tools.library.cli import library as library_group
from host_tools.pumpctl import service_cli
from host_tools.pumpctl.link import PumpError, PumpLink

console = Console()
RECORDS_PER_REQUEST = 30


def _link(port, timeout):
    try:
        return PumpLink(port, timeout_s=timeout)
    except PumpError as e:
        raise click.ClickException(str(e))


def _ml(value_ul):
    return "%.1f mL" % (value_ul / 1000.0)


@click.group()
@click.version_option("0.1.0", prog_name="pumpctl")
def main():
    """Talk to an infusion pump (real or virtual) over its service port."""


main.add_command(library_group)      # library check/compile/show/diff/load (library/cli.py)
service_cli.register(main)           # key provision/change/status/generate, login, clock set


@main.command()
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyACM0 or a pty path")
@click.option("--timeout", default=2.0, show_default=True, help="seconds per reply")
def status(port, timeout):
    """Show what the pump is doing."""
    with _link(port, timeout) as link:
        try:
            ident = link.identify()
            st = link.status()
        except PumpError as e:
            raise click.ClickException(str(e))
        lib_info = None
        if st.get("library_id"):
            try:
                lib_info = link.library_info()
            except PumpError:
                pass                  # the id and version from STATUS are enough
    table = Table(title="Pump status (%s)" % ident)
    table.add_column("field")
    table.add_column("value")
    phase = st["phase"]
    table.add_row("state", sc.PHASE_NAMES[phase] if phase < len(sc.PHASE_NAMES) else str(phase))
    table.add_row("rate", "%.1f mL/h" % (st["rate_ul_per_h"] / 1000.0))
    table.add_row("VTBI", _ml(st["vtbi_ul"]))
    table.add_row("delivered", "%.3f mL" % (st["delivered_nl"] / 1e6))
    table.add_row("KVO delivered", "%.3f mL" % (st["kvo_nl"] / 1e6))
    alarm = st["alarm"]
    table.add_row("alarm", "%s (%s)" % (al.name(alarm), al.PRIORITY_NAMES[st["alarm_priority"]])
                  if alarm else "none")
    table.add_row("core faults", ", ".join(sc.fault_names(st["faults"])) or "none")
    table.add_row("downstream pressure", "%d mmHg" % st["downstream_mmhg"])
    table.add_row("battery", "%d mV" % st["battery_mv"])
    table.add_row("uptime", "%.1f s" % (st["uptime_ms"] / 1000.0))
    table.add_row("log records", str(st["log_seq"]))
    if "library_id" in st:            # pumps before issue 6 do not send it
        if not st["library_id"]:
            text = "none"
        else:
            text = "library %d version %d" % (st["library_id"], st["library_version"])
            if lib_info is not None and lib_info["library_id"] == st["library_id"]:
                text += " %r (%d care areas, %d entries)" % (
                    lib_info["name"], lib_info["care_areas"], lib_info["entries"])
        table.add_row("drug library", text)
    console.print(table)


@main.group()
def logs():
    """Event-log commands."""


CSV_COLUMNS = ["seq", "event", "type", "rtc_utc", "rtc_s", "mono_ms", "a", "b"]


def _last_seq_in_csv(path):
    last = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            last = int(row["seq"])
    return last


@logs.command("pull")
@click.option("--port", required=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--from-seq", default=None, type=int,
              help="first sequence number (default: 1, or resume after the last row of --out)")
@click.option("--timeout", default=2.0, show_default=True)
def logs_pull(port, out_path, from_seq, timeout):
    """Pull the event log, verify every record (CRC, sequence) and write CSV."""
    resume = from_seq is None and os.path.exists(out_path) and os.path.getsize(out_path) > 0
    if resume:
        from_seq = _last_seq_in_csv(out_path) + 1
    elif from_seq is None:
        from_seq = 1
    rows = []
    gaps = []
    with _link(port, timeout) as link:
        try:
            last_seq, _ = link.log_read(from_seq, 0)
            total = max(0, last_seq - from_seq + 1)
            seq = from_seq
            t0 = time.monotonic()
            with Progress(TextColumn("log records"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TransferSpeedColumn(),
                          console=console, transient=True) as progress:
                task = progress.add_task("pull", total=total)
                while seq <= last_seq:
                    _, records = link.log_read(seq, RECORDS_PER_REQUEST)
                    if not records:           # a whole chunk of damaged slots
                        gaps.append((seq, min(last_seq, seq + RECORDS_PER_REQUEST - 1)))
                        seq += RECORDS_PER_REQUEST
                        continue
                    for raw in records:
                        try:
                            rec = eventlog.decode(raw)
                        except eventlog.CorruptRecord as e:
                            raise click.ClickException("record near seq %d failed "
                                                       "verification: %s" % (seq, e))
                        if rec[0] < seq:
                            raise click.ClickException("sequence went back: expected %d, "
                                                       "got %d" % (seq, rec[0]))
                        if rec[0] > seq:
                            gaps.append((seq, rec[0] - 1))
                        rows.append(rec)
                        seq = rec[0] + 1
                    progress.update(task, completed=seq - from_seq)
            elapsed = time.monotonic() - t0
        except PumpError as e:
            raise click.ClickException(str(e))
    mode = "a" if resume else "w"
    with open(out_path, mode, newline="") as f:
        writer = csv.writer(f)
        if not resume:
            writer.writerow(CSV_COLUMNS)
        for seq_no, etype, rtc_s, mono_ms, a, b in rows:
            writer.writerow([seq_no, events.name(etype), etype,
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rtc_s)), rtc_s,
                             mono_ms, a, b])
    last_pulled = rows[-1][0] if rows else from_seq - 1
    click.echo("pulled %d records (seq %d..%d) in %.2f s, each CRC-verified; %s %s" % (
        len(rows), from_seq, last_pulled, elapsed, "appended to" if resume else "wrote",
        out_path))
    if gaps:
        for lo, hi in gaps:
            click.echo("MISSING records %d..%d: damaged or removed on the pump" % (lo, hi),
                       err=True)
        sys.exit(2)


@main.command("sim")
@click.option("--runtime", type=click.Choice(["micropython", "cpython"]), default="micropython",
              show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per second")
@click.option("--rate-ml-h", default=None, help="program and start a continuous infusion")
@click.option("--vtbi-ml", default=None)
@click.option("--state-dir", default=None, help="where the pump keeps its files "
              "(default: a fresh temporary directory)")
@click.option("--baud", default=None, type=click.IntRange(300, 10000000),
              help="throttle the link to what a UART at this rate carries, each way "
                   "(8N1: baud/10 bytes per second); default: unthrottled")
@click.option("--serial", "serial_no", default="VP-0001", show_default=True,
              help="the pump's serial number")
def sim_cmd(runtime, speed, rate_ml_h, vtbi_ml, state_dir, baud, serial_no):
    """Start a virtual pump on a pseudo-terminal and print its path.

    Press the pump's buttons by writing key names to STATE_DIR/press, e.g.
    `echo select > STATE_DIR/press` to confirm `pumpctl key provision`."""
    import tempfile
    from host_tools.pumpctl.simbridge import run_bridge
    if (rate_ml_h is None) != (vtbi_ml is None):
        raise click.ClickException("--rate-ml-h and --vtbi-ml go together")
    # absolute: the pump runs with the repository as its working directory
    state_dir = os.path.abspath(state_dir) if state_dir else tempfile.mkdtemp(prefix="virtual-pump-")
    args = ["--speed", str(speed), "--state-dir", state_dir, "--serial", serial_no]
    if rate_ml_h is not None:
        args += ["--rate-ml-h", str(rate_ml_h), "--vtbi-ml", str(vtbi_ml)]
    try:
        rc = run_bridge(runtime, args, baud=baud,
                        announce=lambda line: (click.echo(line), click.echo(
                            "STATE %s" % state_dir), sys.stdout.flush()))
    except RuntimeError as e:
        raise click.ClickException(str(e))
    if rc:
        raise click.ClickException("virtual pump exited with status %d" % rc)


@main.command("deploy")
@click.option("--port", required=True, help="serial port of the board, e.g. /dev/ttyACM0")
@click.option("--board", type=click.Choice(["pico", "esp32s3"]), default=None,
              help="target board (default: the image's, else pico)")
@click.option("--image", "image_dir", default=None, type=click.Path(file_okay=False),
              help="image folder (default build/firmware/<board>)")
@click.option("--timeout", default=5.0, show_default=True, help="seconds per read")
def deploy_cmd(port, board, image_dir, timeout):
    """Copy the firmware image to a board over its raw REPL and verify it there."""
    from host_tools.pumpctl.deploy import DeployError, deploy
    if image_dir is None:
        image_dir = os.path.join("build", "firmware", board or "pico")
    try:
        deploy(port, image_dir, board=board, console=console, timeout_s=timeout)
    except DeployError as e:
        raise click.ClickException(str(e))


if __name__ == "__main__":
    main()
