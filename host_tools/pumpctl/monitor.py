"""``pumpctl monitor``: live status of one or more pumps over their service links (SR-SVC-6).

Every ``--interval`` seconds each pump is asked for STATUS the way ``pumpctl status`` asks
(``PumpLink.identify()`` once per connection for the serial, then ``PumpLink.status()``;
both are open reads, no login), all pumps at once in worker threads, and one
``rich.live.Live`` table shows per pump: serial and port, therapy phase, rate, volume
delivered of the VTBI, time remaining at the current rate, the top alarm (and latched core
faults), battery.  A pump that does not answer (port missing, link closed, no reply within
``--timeout``) shows "no answer" with the reason and how long ago it last answered; the other
pumps keep updating, and its link is reopened at the next refresh.  ``--count N`` stops after
N refreshes (for scripts and tests); otherwise Ctrl-C stops it.  When stdout is not a
terminal, each refresh's table is printed in turn instead of redrawn.

Only reads: the monitor never sends a write frame, so it needs no key and never disturbs a
therapy; a pump polled once a second answers within its application cycle.
"""
import concurrent.futures
import time

import click
import serial
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

import safety_core as sc
from firmware import alarms as al
from firmware import protocol as p
from host_tools.pumpctl.link import PumpError, PumpLink

PRIORITY_STYLE = {al.PRIORITY_HIGH: "bold white on red", al.PRIORITY_MEDIUM: "bold yellow",
                  al.PRIORITY_LOW: "cyan"}
PHASE_STYLE = {"RUNNING": "green", "KVO": "green", "PAUSED": "yellow", "COMPLETE": "blue"}
LINK_ERRORS = (PumpError, p.FrameError, serial.SerialException, OSError)


def serial_of(identify_text):
    """The pump's serial in its IDENTIFY text (``... sn VP-0001 ...``), read as ``pumpctl
    logs pull`` reads it."""
    from host_tools.pumpctl.cli import _serial_of       # lazy: cli.py imports this module
    return _serial_of(identify_text)


def phase_name(phase):
    return sc.PHASE_NAMES[phase] if 0 <= phase < len(sc.PHASE_NAMES) else str(phase)


def remaining_s(st):
    """Seconds left of the VTBI at the programmed rate (None: no program or no rate)."""
    rate = st["rate_ul_per_h"]
    if rate <= 0 or st["vtbi_ul"] <= 0:
        return None
    left_nl = st["vtbi_ul"] * 1000 - st["delivered_nl"]
    return max(0, left_nl) * 3600.0 / (rate * 1000.0)


def duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return "%d h %02d min" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%d min %02d s" % (seconds // 60, seconds % 60)
    return "%d s" % seconds


class PumpPoller:
    """One pump's link, kept open between refreshes and reopened after a failure."""

    def __init__(self, port, timeout_s=1.0):
        self.port = port
        self.timeout_s = timeout_s
        self.link = None
        self.serial = None
        self.last = None            # last status dict answered
        self.last_ok = None         # time.monotonic() of that answer
        self.error = None           # why the last poll failed, None if it did not

    def _close(self):
        if self.link is not None:
            try:
                self.link.close()
            except Exception:       # noqa: BLE001 - a dead link may fail to close too
                pass
            self.link = None

    def poll(self):
        """Ask for STATUS once (identify on a new link); returns self."""
        try:
            if self.link is None:
                # one attempt per refresh: a silent pump must not hold up the table
                self.link = PumpLink(self.port, timeout_s=self.timeout_s, retries=0)
                self.serial = serial_of(self.link.identify())
            st = self.link.status()
        except LINK_ERRORS as e:
            self._close()
            self.error = _reason(e)
            return self
        except Exception as e:      # noqa: BLE001 - a reply this host cannot read (another
            self._close()           # firmware): this pump's row says so, the others go on
            self.error = "bad reply: %s" % e.__class__.__name__
            return self
        self.last = st
        self.last_ok = time.monotonic()
        self.error = None
        return self

    def close(self):
        self._close()


def _reason(e):
    if isinstance(e, PumpError):
        if e.code == "TIMEOUT":
            return "no reply"
        if e.code == "LINK":
            return "cannot open port"
        return "%s: %s" % (e.code, e.message)
    if isinstance(e, p.FrameError):
        return "bad reply: %s" % e
    return "link lost: %s" % (e.__class__.__name__,)


def render(pollers, refresh, count=None, now=None):
    """The table of one refresh."""
    now = time.monotonic() if now is None else now
    title = "Pumps %s (refresh %d%s)" % (time.strftime("%H:%M:%S"), refresh,
                                          "/%d" % count if count else "")
    table = Table(title=title)
    for col in ("pump", "state", "rate", "delivered / VTBI", "time left", "alarm", "battery"):
        table.add_column(col, no_wrap=col != "alarm")
    for pl in pollers:
        name = Text("%s\n" % (pl.serial or "?"))
        name.append(pl.port, style="dim")
        if pl.error is not None:
            ago = ("last answer %s ago" % duration(now - pl.last_ok)) if pl.last_ok \
                else "never answered"
            table.add_row(name, Text("no answer", style="bold red"),
                          "-", "-", "-", Text("%s (%s)" % (pl.error, ago), style="red"), "-")
            continue
        st = pl.last
        phase = phase_name(st["phase"])
        left = remaining_s(st)
        if left is None:
            left_text = "-"
        elif phase in ("KVO", "COMPLETE") or left == 0:
            left_text = "done"
        else:
            left_text = duration(left) + ("" if phase == "RUNNING" else " (%s)" % phase.lower())
        if st["alarm"]:
            prio = st["alarm_priority"]
            alarm = Text("%s (%s)" % (al.name(st["alarm"]), al.PRIORITY_NAMES[prio]
                                      if 0 <= prio < len(al.PRIORITY_NAMES) else prio),
                         style=PRIORITY_STYLE.get(prio, ""))
        else:
            alarm = Text("none", style="dim")
        faults = sc.fault_names(st["faults"])
        if faults:
            alarm.append("\ncore: %s" % ", ".join(faults), style="red")
        table.add_row(name, Text(phase, style=PHASE_STYLE.get(phase, "")),
                      "%.1f mL/h" % (st["rate_ul_per_h"] / 1000.0),
                      "%.3f / %.1f mL" % (st["delivered_nl"] / 1e6, st["vtbi_ul"] / 1000.0),
                      left_text, alarm, "%d mV" % st["battery_mv"])
    return table


def run(ports, interval=2.0, count=None, timeout_s=1.0, console=None):
    """Poll ``ports`` every ``interval`` s and show the table; ``count`` refreshes then
    return (None: until Ctrl-C).  Returns the pollers (their last state)."""
    console = console or Console()
    serial_of("")                   # import cli's parser here, not in the worker threads
    pollers = [PumpPoller(port, timeout_s) for port in ports]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(pollers),
                                                 thread_name_prefix="monitor")
    live = Live(console=console, auto_refresh=False, transient=False) \
        if console.is_terminal else None
    refresh = 0
    try:
        if live is not None:
            live.start()
        while count is None or refresh < count:
            started = time.monotonic()
            list(pool.map(lambda pl: pl.poll(), pollers))
            refresh += 1
            table = render(pollers, refresh, count)
            if live is not None:
                live.update(Group(table, Text("Ctrl-C to stop", style="dim")), refresh=True)
            else:
                console.print(table)
            if count is not None and refresh >= count:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
        pool.shutdown(wait=True)
        for pl in pollers:
            pl.close()
    return pollers


@click.command("monitor")
@click.option("--port", "ports", multiple=True, required=True,
              help="serial port of a pump (a pty path for `pumpctl sim`); repeat for "
                   "several pumps")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1),
              help="seconds between refreshes")
@click.option("--count", default=None, type=click.IntRange(1),
              help="stop after this many refreshes (default: until Ctrl-C)")
@click.option("--timeout", default=1.0, show_default=True, type=click.FloatRange(0.05),
              help="seconds a pump has to answer before it is shown as not answering")
def monitor_cmd(ports, interval, count, timeout):
    """Live status of one or more pumps: therapy, rate, delivered, time left, top alarm,
    battery.  Only reads (no key needed); a pump that stops answering is shown as such and
    the others keep updating."""
    if len(set(ports)) != len(ports):
        raise click.UsageError("the same --port is given twice")
    pollers = run(list(ports), interval=interval, count=count, timeout_s=timeout)
    if count is not None and all(pl.error is not None for pl in pollers):
        raise click.ClickException("no pump answered at the last refresh")
