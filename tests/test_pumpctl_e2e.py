"""pumpctl against the virtual pump on a pseudo-terminal, end to end (SR-SVC-1, SR-SVC-3).

Starts ``pumpctl sim`` (MicroPython and CPython runtimes), then runs
``pumpctl status`` and ``pumpctl logs pull`` as a technician would, and throws
malformed frames at the pump to prove it answers with errors and keeps
infusing.
"""
import os
import subprocess
import sys
import time

import pytest
import serial

from firmware import protocol as p
from host_tools.pumpctl import logfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUMPCTL = [sys.executable, "-m", "host_tools.pumpctl.cli"]


def run_pumpctl(*args, timeout=60):
    return subprocess.run(PUMPCTL + list(args), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(params=["micropython", "cpython"])
def virtual_pump(request, tmp_path):
    proc = subprocess.Popen(PUMPCTL + ["sim", "--runtime", request.param, "--speed", "50",
                                       "--rate-ml-h", "10", "--vtbi-ml", "100",
                                       "--state-dir", str(tmp_path / "pump")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("PTY "), (line, proc.stderr.read() if proc.poll() else "")
    time.sleep(0.5)
    yield line.split()[1], request.param, tmp_path / "pump"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_status_shows_running_infusion_SR_SVC_3(virtual_pump):
    port, runtime, _ = virtual_pump
    res = run_pumpctl("status", "--port", port)
    assert res.returncode == 0, res.stderr
    assert "RUNNING" in res.stdout and "10.0 mL/h" in res.stdout
    assert ("reference" if runtime == "micropython" else "cffi") in res.stdout


def test_logs_pull_verifies_and_writes_raw_records_then_resumes_SR_SVC_3(virtual_pump, tmp_path):
    port, _, _ = virtual_pump
    out = tmp_path / "events.plog"
    res = run_pumpctl("logs", "pull", "--port", port, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "each CRC- and chain-verified" in res.stdout and "records/s" in res.stdout
    rows = logfile.read_records(str(out))
    assert [r["type_name"] for r in rows[:4]] == ["POWER_ON", "SELF_TEST_PASSED",
                                                  "THERAPY_PROGRAMMED", "THERAPY_STARTED"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    # resume (while infusing): continues after the last record, the file stays consistent
    res = run_pumpctl("logs", "pull", "--port", port, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "appended to" in res.stdout
    seqs = [r["seq"] for r in logfile.read_records(str(out))]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= len(rows)
    res = run_pumpctl("logs", "verify", str(out))
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout + res.stderr
    # a directory names the file after the pump's serial
    res = run_pumpctl("logs", "pull", "--port", port, "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "pump-VP-0001.plog").exists()


def test_malformed_frames_get_error_replies_and_infusion_continues_SR_SVC_1(virtual_pump):
    port, _, _ = virtual_pump
    ser = serial.Serial(port, 115200, timeout=0.1)
    try:
        dec = p.FrameDecoder()
        bad = bytearray(p.encode_frame(11, p.STATUS))
        bad[1] ^= 0x5A
        ser.write(bytes(bad) + b"\xaa" * 2000 + b"\x00" + p.encode_frame(12, 0x66))
        replies = []
        deadline = time.time() + 10
        while len(replies) < 3 and time.time() < deadline:
            replies.extend(dec.feed(ser.read(4096)))
        codes = sorted(p.parse_error(r[2])[0] for r in replies if r[1] == p.ERROR)
        assert codes == sorted([p.E_BAD_CRC, p.E_OVERSIZE, p.E_UNKNOWN_COMMAND]) or \
            codes == sorted([p.E_MALFORMED, p.E_OVERSIZE, p.E_UNKNOWN_COMMAND]), replies
    finally:
        ser.close()
    res = run_pumpctl("status", "--port", port)
    assert res.returncode == 0 and "RUNNING" in res.stdout, res.stdout + res.stderr


def test_status_on_missing_port_fails_clearly_SR_SVC_3():
    res = run_pumpctl("status", "--port", "/dev/does-not-exist", "--timeout", "0.5")
    assert res.returncode != 0
    assert "cannot open /dev/does-not-exist" in res.stderr


def test_silent_port_times_out_with_a_clear_message_SR_SVC_3():
    import os as _os
    import tty
    master, slave = _os.openpty()
    tty.setraw(slave)
    try:
        res = run_pumpctl("status", "--port", _os.ttyname(slave), "--timeout", "0.3")
    finally:
        _os.close(master)
        _os.close(slave)
    assert res.returncode != 0
    assert "TIMEOUT" in res.stderr and "no reply" in res.stderr


def test_damaged_record_is_reported_as_missing_and_the_rest_saved_SR_LOG_2(virtual_pump,
                                                                          tmp_path):
    port, _, state_dir = virtual_pump
    log_file = state_dir / "events.0.bin"
    data = bytearray(log_file.read_bytes())
    data[32 + 9] ^= 0xFF                      # damage record 2 on the pump's flash
    log_file.write_bytes(bytes(data))
    out = tmp_path / "events.plog"
    res = run_pumpctl("logs", "pull", "--port", port, "--out", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "MISSING records 2..2" in res.stderr
    seqs = [r["seq"] for r in logfile.read_records(str(out))]
    assert seqs[:3] == [1, 3, 4]
    res = run_pumpctl("logs", "verify", str(out))
    assert res.returncode == 1 and "record seq 2 missing (expected at position 2)" in res.stderr
