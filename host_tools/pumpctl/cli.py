"""pumpctl: the technicians' and pharmacists' command-line tool (SR-SVC-3).

Owns the user-facing commands: ``status``, ``logs pull`` / ``logs verify`` (their
logic is in ``logfile.py``), ``sim``, ``deploy`` (its logic is in ``deploy.py``).  Every failure prints a message naming the
problem and exits non-zero; long transfers show a progress bar.
"""
import os
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.text import Text
from rich.table import Table

import safety_core as sc
from firmware import alarms as al
from firmware import eventlog
from host_tools.fleet.cli import fleet as fleet_group
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
main.add_command(fleet_group)        # fleet import/list/show (host_tools/fleet/cli.py)
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


class _RecordRate(ProgressColumn):
    """records/s and KB/s of a task counted in records."""

    def render(self, task):
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("-- rec/s  -- KB/s", style="progress.data.speed")
        return Text("%.0f rec/s  %.1f KB/s" % (speed, speed * eventlog.RECORD_SIZE / 1024.0),
                    style="progress.data.speed")


def _serial_of(identify_text):
    words = identify_text.split()
    return words[words.index("sn") + 1] if "sn" in words[:-1] else "UNSET"


@logs.command("pull")
@click.option("--port", required=True)
@click.option("--out", "out_path", required=True, type=click.Path(),
              help="pulled-log file (.plog), or a directory for pump-<serial>.plog; "
                   "an existing file is resumed after its last record")
@click.option("--timeout", default=2.0, show_default=True)
def logs_pull(port, out_path, timeout):
    """Pull the event log into a raw .plog file, verifying CRC, sequence and hash chain."""
    from host_tools.pumpctl import logfile
    with _link(port, timeout) as link:
        try:
            path = logfile.resolve_out(out_path, _serial_of(link.identify()))
            with Progress(TextColumn("log records"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), _RecordRate(),
                          console=console, transient=True) as progress:
                task = progress.add_task("pull", total=None)

                def show(done, total):
                    progress.update(task, completed=done, total=total)

                res = logfile.pull(link, path, RECORDS_PER_REQUEST, show)
        except PumpError as e:
            raise click.ClickException(str(e))
        except (logfile.LogFileError, logfile.HistoryRewritten) as e:
            raise click.ClickException(str(e))
    rate = res.pulled / res.elapsed_s if res.elapsed_s > 0 else 0.0
    click.echo("pulled %d records (seq %d..%d) in %.2f s (%.0f records/s, %.1f KB/s), each "
               "CRC- and chain-verified; %s %s" % (
                   res.pulled, res.from_seq, res.to_seq, res.elapsed_s, rate,
                   rate * eventlog.RECORD_SIZE / 1024.0,
                   "appended to" if res.resumed else "wrote", path))
    for lo, hi in res.recycled:
        click.echo("records %d..%d were recycled on the pump before this pull (ring full)"
                   % (lo, hi))
    bad = False
    for lo, hi in res.gaps:
        click.echo("MISSING records %d..%d: damaged or removed on the pump" % (lo, hi),
                   err=True)
        bad = True
    for seq in res.chain_breaks:
        click.echo("CHAIN BROKEN at record %d: it does not follow from record %d" % (
            seq, seq - 1), err=True)
        bad = True
    if bad:
        sys.exit(2)


@logs.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
def logs_verify(file):
    """Name every missing, edited, reordered or duplicated record of a pulled log."""
    from host_tools.pumpctl import logfile
    try:
        v = logfile.verify(file)
    except logfile.LogFileError as e:
        raise click.ClickException(str(e))
    for lo, hi in v.recycled:
        click.echo("records %d..%d were recycled on the pump before they were pulled "
                   "(named by a LOG_SEGMENT_RECYCLED marker)" % (lo, hi))
    for p in v.problems:
        click.echo("%s: %s" % (p.kind.upper(), p.message), err=True)
    if v.problems:
        click.echo("%s: %d problem(s) in %d records" % (file, len(v.problems), v.records),
                   err=True)
        sys.exit(1)
    click.echo("%s: OK, %d records seq %d..%d, CRC and hash chain verified%s" % (
        file, v.records, v.first_seq, v.last_seq,
        " from genesis" if v.anchored else ""))


def _add_export_commands():
    """logs export --format csv|json|fhir and logs plot (host_tools/logs_export.py)."""
    from host_tools.logs_export import logs_export_cmd, logs_plot_cmd
    logs.add_command(logs_export_cmd)
    logs.add_command(logs_plot_cmd)


_add_export_commands()


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


def _add_monitor_command():
    """monitor: live status of several pumps (host_tools/pumpctl/monitor.py, SR-SVC-6)."""
    from host_tools.pumpctl.monitor import monitor_cmd
    main.add_command(monitor_cmd)


_add_monitor_command()


if __name__ == "__main__":
    main()
