"""PT-6: event-log pull throughput against the raw throughput of the same link.

Fills a pump's log with 16,384 records in advance (the firmware's own ``EventLog``
appending into a ``PosixStorage`` state directory, in process: the same segment
files a pump writes), then, on both runtimes of the virtual pump (``pumpctl sim``,
MicroPython default and CPython, real time, 100 ms application cycle, idle pump),
prints for two links:

  - the pseudo-terminal link as ``pumpctl sim`` gives it (no throttle), and
  - the same link throttled to 115,200 baud (``pumpctl sim --baud 115200``:
    11,520 B/s each way, 8N1),

the *raw* throughput and the log-pull throughput, and their ratio against the
90 % target; on the 115,200-baud link also the time for 16,384 records (target
<= 60 s).

"Raw" here: the bytes per second the bridge (``simbridge.run_bridge``, same pty,
same throttle) carries from the pump side to the host when the pump is replaced
by a trivial source that writes bytes as fast as the pipe takes them, read on the
host through pyserial exactly as ``PumpLink`` reads: the most the link itself
carries in the direction a pull uses, with no protocol, no framing and no pump
cycle.  The pull figure is *record* bytes (32 B per record) per second of
``logfile.pull`` (``pumpctl logs pull``'s code: request, CRC, chain and file
writes included), so framing (COBS, header, CRC, reply head) counts against it.

Also printed: the pump's cost of one application cycle that answers ``depth``
LOG_READs (the host's pipeline depth, all arriving in one cycle) under MicroPython,
in process (unix port, x64: a Pico is many times slower), against the 100 ms cycle.

Usage: .venv/bin/python tests/bench/pt6_log_pull.py [--records N] [--depth D]
       [--runtime micropython|cpython] (defaults: 16,384, logfile.PIPELINE_DEPTH, both)
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import serial  # noqa: E402

from firmware import eventlog as el  # noqa: E402
from firmware import events  # noqa: E402
from hal.sim.storage import PosixStorage  # noqa: E402
from host_tools.pumpctl import logfile  # noqa: E402
from host_tools.mpy_runtime import micropython_env, micropython_executable  # noqa: E402
from host_tools.pumpctl.link import PumpLink  # noqa: E402

RECORDS = 16384
BAUD = 115200
TARGET_RATIO = 0.90
TARGET_S = 60.0
RAW_SECONDS = 3.0

SOURCE_CHILD = "import os\nb = b'\\x55' * 4096\nwhile True:\n    os.write(1, b)\n"

BRIDGE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from host_tools.pumpctl import simbridge
child = [sys.executable, "-c", sys.argv[2]]
simbridge.child_command = lambda runtime, args: child
baud = int(sys.argv[3]) or None
sys.exit(simbridge.run_bridge("cpython", [], announce=lambda s: print(s, flush=True),
                              baud=baud))
"""


class _Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        self.ms += 250
        return self.ms

    def rtc_s(self):
        return 1795000000 + self.ms // 1000


def prepare(state_dir, n):
    """A pump state directory whose log holds n chained records (a mix of events)."""
    os.makedirs(state_dir, exist_ok=True)
    log = el.EventLog(PosixStorage(state_dir), _Clock())
    kinds = (events.RATE_CHANGED, events.BOLUS_REQUESTED, events.ALARM_RAISED,
             events.ALARM_CLEARED)
    for i in range(n):
        log.append(kinds[i % len(kinds)], i * 7, -i)
    return log.last_seq


def _start(cmd):
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("PTY "):
        proc.kill()
        raise RuntimeError("no PTY line: %r %s" % (line, proc.stderr.read()))
    return proc, line.split()[1]


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def raw_throughput(baud):
    """Bytes/s the bridge carries pump -> host with a trivial source as the pump."""
    proc, port = _start([sys.executable, "-c", BRIDGE, REPO, SOURCE_CHILD, str(baud or 0)])
    try:
        ser = serial.Serial(port, baudrate=baud or BAUD, timeout=0.05)
        try:
            t_end = time.monotonic() + 0.5          # warm up: the pipe's backlog
            while time.monotonic() < t_end:
                ser.read(4096)
            n = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < RAW_SECONDS:
                n += len(ser.read(4096))
            return n / (time.monotonic() - t0)
        finally:
            ser.close()
    finally:
        _stop(proc)


def timed_pull(runtime, prepared, tmp, baud, depth):
    """(records pulled, seconds, record bytes/s) of logfile.pull against pumpctl sim."""
    state = os.path.join(tmp, "pump-%s-%s" % (runtime, baud or "pty"))
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(prepared, state)
    cmd = [os.path.join(os.path.dirname(sys.executable), "pumpctl"), "sim", "--runtime",
           runtime, "--speed", "1", "--state-dir", state]
    if baud:
        cmd += ["--baud", str(baud)]
    proc, port = _start(cmd)
    out = os.path.join(tmp, "pull-%s-%s.plog" % (runtime, baud or "pty"))
    try:
        with PumpLink(port, timeout_s=3.0) as link:
            link.identify()                         # the pump is up and answering
            res = logfile.pull(link, out, 30, depth=depth)
    finally:
        _stop(proc)
    v = logfile.verify(out)
    if not v.ok or res.gaps or res.chain_breaks:
        raise RuntimeError("pull did not verify: %s" % (v.problems[:3],))
    return res.pulled, res.elapsed_s, res.pulled * el.RECORD_SIZE / res.elapsed_s


CYCLE_PROBE = r"""
import struct, sys, time
from firmware import eventlog as el, protocol as p
from firmware.service import ServiceServer
from hal.sim.storage import PosixStorage
class Clock:
    def ticks_ms(self): return 0
    def rtc_s(self): return 0
class Board: SERIAL = "PT6"
class Hal: board = Board()
class App: hal = Hal()
class Port:
    data = b""
    def read(self, n):
        d = self.data[:n]; self.data = self.data[n:]; return d
    def write(self, d): pass
depth = int(sys.argv[2])
log = el.EventLog(PosixStorage(sys.argv[1]), Clock())
port = Port()
srv = ServiceServer(port, App(), log)
best = 10 ** 9
for rep in range(5):
    port.data = b"".join(p.encode_frame(i + 1, p.LOG_READ, struct.pack(
        "<IH", 1 + 30 * (i + depth * rep), 30)) for i in range(depth))
    t0 = time.ticks_us()
    srv.poll()
    best = min(best, time.ticks_diff(time.ticks_us(), t0))
print(best)
"""


def cycle_cost_us(prepared, depth):
    """Microseconds of ServiceServer.poll answering ``depth`` LOG_READs, MicroPython."""
    exe = micropython_executable()
    if not exe:
        return None
    proc = subprocess.run([exe, "-c", CYCLE_PROBE, prepared, str(depth)], cwd=REPO,
                          env=micropython_env(), capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError("probe: %s %s" % (proc.stdout, proc.stderr))
    return int(proc.stdout.split()[-1])


def _pct(x):
    return "%5.1f %%" % (100 * x) if x >= 0.01 else "%.3f %%" % (100 * x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=RECORDS)
    ap.add_argument("--depth", type=int, default=logfile.PIPELINE_DEPTH,
                    help="LOG_READ requests in flight (1: one at a time)")
    ap.add_argument("--runtime", choices=("micropython", "cpython"), action="append")
    args = ap.parse_args()
    runtimes = args.runtime or ["micropython", "cpython"]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared")
        t0 = time.perf_counter()
        last = prepare(prepared, args.records)
        prep_s = time.perf_counter() - t0
        print("PT-6  event-log pull, %d records (%d B of records) prepared in %.1f s "
              "(EventLog + PosixStorage in process); %d LOG_READ%s in flight, 30 records "
              "each" % (last, last * el.RECORD_SIZE, prep_s, args.depth,
                        "" if args.depth == 1 else "s"))
        cost = cycle_cost_us(prepared, args.depth)
        if cost is not None:
            print("  pump side: one cycle answering %d LOG_READ%s (MicroPython unix x64, in "
                  "process, best of 5) %.1f ms of the 100 ms cycle" % (
                      args.depth, "" if args.depth == 1 else "s", cost / 1000.0))
        raw = {None: raw_throughput(None), BAUD: raw_throughput(BAUD)}
        print("  raw link pump->host (bridge + pty + pyserial, trivial byte source, %.0f s): "
              "pty %.0f B/s; --baud %d %.0f B/s (ceiling %d B/s)" % (
                  RAW_SECONDS, raw[None], BAUD, raw[BAUD], BAUD // 10))
        for runtime in runtimes:
            for baud in (None, BAUD):
                try:
                    n, secs, rate = timed_pull(runtime, prepared, tmp, baud, args.depth)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    print("  %-11s %-14s FAILED: %s" % (runtime, "pty" if baud is None
                                                          else "%d baud" % baud, e))
                    continue
                label = "pty (no throttle)" if baud is None else "%d baud" % baud
                line = ("  %-11s %-18s pull %6d records in %6.1f s  %8.0f B/s of records  "
                        "= %s of raw, target >= %.0f %%  ratio %.3g" % (
                            runtime, label, n, secs, rate, _pct(rate / raw[baud]),
                            100 * TARGET_RATIO, rate / raw[baud] / TARGET_RATIO))
                if baud:
                    t16 = secs * RECORDS / float(n)
                    line += ("; %d records %.1f s, target <= %.0f s  ratio %.2f" % (
                        RECORDS, t16, TARGET_S, t16 / TARGET_S))
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
