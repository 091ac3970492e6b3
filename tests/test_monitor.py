"""``pumpctl monitor`` against real virtual pumps (SR-SVC-6).

Two ``pumpctl sim`` pumps (the real firmware behind a pty, as in ``test_pumpctl_e2e.py``)
with different programs, a pty nobody answers on and a port that does not exist: the table
shows each pump's therapy, and when one pump is killed mid-run it turns into "no answer"
while the other keeps updating.
"""
import io
import os
import re
import subprocess
import sys
import time
import tty

import pytest
from rich.console import Console

from host_tools import mpy_runtime
from host_tools.pumpctl import monitor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUMPCTL = [sys.executable, "-m", "host_tools.pumpctl.cli"]
RUNTIME = "micropython" if mpy_runtime.micropython_executable() else "cpython"


def start_pump(tmp_path, serial, rate, vtbi):
    proc = subprocess.Popen(PUMPCTL + ["sim", "--runtime", RUNTIME, "--speed", "50",
                                       "--rate-ml-h", rate, "--vtbi-ml", vtbi,
                                       "--serial", serial,
                                       "--state-dir", str(tmp_path / serial)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("PTY "), (line, proc.stderr.read() if proc.poll() else "")
    return proc, line.split()[1]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def two_pumps(tmp_path):
    a = start_pump(tmp_path, "VP-A", "10", "100")
    b = start_pump(tmp_path, "VP-B", "5.5", "50")
    time.sleep(0.5)
    yield a, b
    for proc, _ in (a, b):
        stop(proc)


def tables(text):
    """{refresh number: {serial or port: [cells]}} of the printed tables."""
    out = {}
    for block in re.split(r"Pumps \d\d:\d\d:\d\d \(refresh ", text)[1:]:
        n = int(block.split("/", 1)[0])
        rows = {}
        lines = [ln for ln in block.splitlines() if ln.startswith("│")]
        for first, second in zip(lines[0::2], lines[1::2]):
            cells = [c.strip() for c in first.strip("│").split("│")]
            port = second.strip("│").split("│")[0].strip()
            rows[cells[0]] = cells
            rows[port] = cells
        out[n] = rows
    return out


def test_monitor_shows_each_pump_and_a_dead_pump_does_not_stop_the_others_SR_SVC_6(
        two_pumps):
    (proc_a, pty_a), (proc_b, pty_b) = two_pumps
    master, slave = os.openpty()               # a port that is there but never answers
    tty.setraw(slave)
    silent = os.ttyname(slave)
    count = 6
    mon = subprocess.Popen(PUMPCTL + ["monitor", "--port", pty_a, "--port", pty_b,
                                      "--port", silent, "--port", "/dev/does-not-exist",
                                      "--interval", "0.5", "--timeout", "0.5",
                                      "--count", str(count)],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=dict(os.environ, COLUMNS="200", PYTHONUNBUFFERED="1"))
    try:
        seen = []
        for line in mon.stdout:                # after the 2nd table, pump B dies
            seen.append(line)
            if line.startswith("└") and "".join(seen).count("(refresh ") == 2:
                stop(proc_b)
                break
        rest, err = mon.communicate(timeout=120)
    finally:
        stop(mon)
        os.close(master)
        os.close(slave)
    out = "".join(seen) + rest
    assert mon.returncode == 0, out + err
    t = tables(out)
    assert sorted(t) == list(range(1, count + 1)), out
    first, last = t[1], t[count]
    a = first["VP-A"]
    assert a[1:4] == ["RUNNING", "10.0 mL/h", a[3]] and a[3].endswith("/ 100.0 mL"), a
    assert re.match(r"\d+ h \d\d min", a[4]) and a[5] == "none" and a[6].endswith(" mV"), a
    b = first["VP-B"]
    assert b[1:3] == ["RUNNING", "5.5 mL/h"] and b[3].endswith("/ 50.0 mL"), b
    assert first[silent][1] == "no answer" and "no reply" in first[silent][5]
    assert first["/dev/does-not-exist"][1] == "no answer"
    assert "cannot open port" in first["/dev/does-not-exist"][5]
    # pump B stopped answering; A kept updating
    assert t[2]["VP-B"][1] == "RUNNING"
    for n in range(4, count + 1):
        assert t[n][pty_b][0] == "VP-B" and t[n][pty_b][1] == "no answer", t[n][pty_b]
    assert "last answer" in last[pty_b][5]
    assert last["VP-A"][1] == "RUNNING"
    delivered = [float(t[n]["VP-A"][3].split()[0]) for n in range(1, count + 1)]
    assert delivered == sorted(delivered) and delivered[-1] > delivered[2], delivered


def test_time_left_is_the_vtbi_not_yet_delivered_at_the_rate_SR_SVC_6():
    st = {"phase": 2, "rate_ul_per_h": 10000, "vtbi_ul": 100000, "delivered_nl": 25000000,
          "alarm": 0, "alarm_priority": 0, "faults": 0, "battery_mv": 4100}
    assert monitor.remaining_s(st) == 7.5 * 3600
    assert monitor.duration(7.5 * 3600) == "7 h 30 min"
    assert monitor.remaining_s(dict(st, rate_ul_per_h=0)) is None
    assert monitor.remaining_s(dict(st, delivered_nl=200000000)) == 0


def test_live_table_on_a_terminal_and_exit_code_when_nobody_answers_SR_SVC_6():
    buf = io.StringIO()
    pollers = monitor.run(["/dev/does-not-exist"], interval=0.1, count=2,
                          console=Console(file=buf, force_terminal=True, width=150))
    assert pollers[0].error == "cannot open port"
    assert "no answer" in buf.getvalue() and "refresh 2/2" in buf.getvalue()
    from click.testing import CliRunner
    from host_tools.pumpctl.cli import main
    res = CliRunner().invoke(main, ["monitor", "--port", "/dev/does-not-exist",
                                    "--interval", "0.1", "--count", "1"])
    assert res.exit_code == 1 and "no pump answered" in res.output
    res = CliRunner().invoke(main, ["monitor", "--port", "/x", "--port", "/x", "--count", "1"])
    assert res.exit_code == 2


def test_a_reply_this_host_cannot_read_marks_that_pump_only_SR_SVC_6(monkeypatch):
    """Not only link errors: an unreadable STATUS (another firmware) must not end the monitor."""
    class OddLink:
        def __init__(self, port, timeout_s, retries):
            self.port = port

        def identify(self):
            return "AMB-PUMP-1 fw 9.9 sn VP-ODD"

        def status(self):
            if self.port == "/odd":
                raise ValueError("short STATUS payload")
            return {"phase": 2, "rate_ul_per_h": 10000, "vtbi_ul": 100000,
                    "delivered_nl": 0, "alarm": 0, "alarm_priority": 0, "faults": 0,
                    "battery_mv": 4100}

        def close(self):
            pass
    monkeypatch.setattr(monitor, "PumpLink", OddLink)
    buf = io.StringIO()
    pollers = monitor.run(["/odd", "/fine"], interval=0.05, count=1,
                          console=Console(file=buf, width=150))
    assert pollers[0].error == "bad reply: ValueError" and pollers[1].error is None
    assert "RUNNING" in buf.getvalue() and "bad reply: ValueError" in buf.getvalue()
