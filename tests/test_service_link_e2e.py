"""pumpctl key provision / login / library load against `pumpctl sim`, end to end (issue 6:
SR-SVC-2, SR-SVC-3, SR-LIB-2, SR-LIB-3), under the MicroPython runtime and CPython.

The technician's path from the sample library: `pumpctl library compile`, `pumpctl key
provision` (SELECT pressed on the virtual pump through its press file), `pumpctl library
load`, then `pumpctl status` shows the active library; refused libraries and wrong keys
give clear messages, non-zero exits and leave the old library active; an interrupted load
resumes where it stopped.  The whole path runs on both runtimes; the refusals and the
resume (the same pump code, tested in process on both runtimes too) on MicroPython.
"""
import csv
import os
import subprocess
import sys
import time

import pytest

from firmware import events
from host_tools.pumpctl import load as ld
from host_tools.pumpctl.link import PumpLink
from host_tools.pumpctl.session import Session

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUMPCTL = [sys.executable, "-m", "host_tools.pumpctl.cli"]
SAMPLE = os.path.join(REPO, "libraries", "sample_home_infusion.csv")


def run_pumpctl(*args, timeout=60):
    return subprocess.run(PUMPCTL + [str(a) for a in args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, COLUMNS="200"))


def ok(res):
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def keys_and_libraries(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    for name in ("tech.key", "fleet.key", "other.key"):
        ok(run_pumpctl("key", "generate", d / name))
    for version in (1, 2):
        ok(run_pumpctl("library", "compile", SAMPLE, "--key", d / "fleet.key", "--out",
                       d / ("v%d.bin" % version), "--library-id", 7, "--version", version))
    ok(run_pumpctl("library", "compile", SAMPLE, "--key", d / "other.key", "--out",
                   d / "foreign.bin", "--library-id", 7, "--version", 3))
    return d


@pytest.fixture
def pump(request, tmp_path):
    """A virtual pump on a pty (MicroPython runtime unless parametrized)."""
    runtime = getattr(request, "param", "micropython")
    state = tmp_path / "pump"
    proc = subprocess.Popen(PUMPCTL + ["sim", "--runtime", runtime, "--speed", "5",
                                       "--state-dir", str(state), "--serial", "VP-E2E"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("PTY "), (line, proc.stderr.read() if proc.poll() else "")
    time.sleep(0.5)
    yield line.split()[1], state
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def provision(port, state, d):
    prov = subprocess.Popen(PUMPCTL + ["key", "provision", "--port", port, "--key",
                                       str(d / "tech.key"), "--fleet-key", str(d / "fleet.key")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = prov.stdout.readline()
    assert "press SELECT" in first + prov.stdout.readline(), first
    (state / "press").write_text("select\n")
    out, err = prov.communicate(timeout=60)
    assert prov.returncode == 0, out + err
    assert "keys provisioned" in out
    return out


@pytest.mark.parametrize("pump", ["micropython", "cpython"], indirect=True)
def test_provision_load_and_status_from_the_sample_library_SR_LIB_3_SR_SVC_2(
        pump, keys_and_libraries, tmp_path):
    port, state = pump
    d = keys_and_libraries
    # nothing can be written before the keys, and the first keys need SELECT
    res = run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key", d / "v1.bin")
    assert res.returncode != 0 and "no technician key" in res.stderr
    provision(port, state, d)
    out = ok(run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key",
                         d / "v1.bin"))
    assert "loaded: library 7 version 1" in out and "VP-E2E" in out
    out = ok(run_pumpctl("status", "--port", port))
    assert "library 7 version 1 'sample_home_infusion'" in out
    assert "sn VP-E2E library 7 v1" in out
    # the next version goes to the other slot
    out = ok(run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key",
                         d / "v2.bin"))
    assert "library 7 version 2" in out and "slot B" in out
    assert "library 7 version 2" in ok(run_pumpctl("status", "--port", port))
    # the pump's log tells the story
    log_path = tmp_path / "log.plog"
    ok(run_pumpctl("logs", "pull", "--port", port, "--out", log_path))
    from host_tools.pumpctl import logfile
    names = [r["type_name"] for r in logfile.read_records(str(log_path))]
    for name in ("KEYS_CHANGED", "SERVICE_LOGIN", "SERVICE_COMMAND", "LIBRARY_LOADED",
                 "SERVICE_LOGOUT"):
        assert name in names, (name, names)
    assert names.count("LIBRARY_LOADED") == 2
    assert events.name(events.LIBRARY_LOADED) == "LIBRARY_LOADED"


def test_refusals_are_clear_and_keep_the_old_library_SR_LIB_2(pump, keys_and_libraries,
                                                              tmp_path):
    port, state = pump
    d = keys_and_libraries
    provision(port, state, d)
    ok(run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key", d / "v1.bin"))
    # signed with another fleet key: the pump refuses it after the transfer
    res = run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key",
                      d / "foreign.bin")
    assert res.returncode == 1
    assert "authentication tag mismatch" in res.stderr and "previous one stays active" in \
        res.stderr, res.stderr
    # a flipped byte: the host sees the CRC; forced through, the pump refuses it too
    bad = bytearray((d / "v2.bin").read_bytes())
    bad[700] ^= 0x01
    (tmp_path / "bad.bin").write_bytes(bytes(bad))
    res = run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key",
                      tmp_path / "bad.bin")
    assert res.returncode == 1 and "not sent: CRC mismatch" in res.stderr, res.stderr
    res = run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key", "--force",
                      tmp_path / "bad.bin")
    assert res.returncode == 1 and "REFUSED" in res.stderr and "CRC mismatch" in res.stderr
    # truncated
    (tmp_path / "short.bin").write_bytes((d / "v2.bin").read_bytes()[:-10])
    res = run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key", "--force",
                      tmp_path / "short.bin")
    assert res.returncode == 1 and "truncated" in res.stderr, res.stderr
    # the wrong technician key: login refused, counted
    res = run_pumpctl("library", "load", "--port", port, "--key", d / "other.key", d / "v2.bin")
    assert res.returncode == 1 and "login refused" in res.stderr and "login failed" in \
        res.stderr, res.stderr
    out = ok(run_pumpctl("key", "status", "--port", port))
    assert "failed logins in a row: 1" in out
    assert "library 7 version 1" in ok(run_pumpctl("status", "--port", port))


def test_an_interrupted_load_resumes_SR_LIB_3(pump, keys_and_libraries, tmp_path):
    from tests.bench.pt7_library import generate_model
    from host_tools.library import compiler as cp
    from host_tools.library import check as ck
    port, state = pump
    d = keys_and_libraries
    provision(port, state, d)
    from host_tools.library import source as sm
    src = tmp_path / "big.csv"
    src.write_text(sm.to_csv(generate_model(care_areas=4, entries=400)))
    model, problems = ck.check_file(str(src), {"library_id": 9, "version": 1})
    assert not ck.errors(problems)
    fleet, _ = cp.load_key(str(d / "fleet.key"))
    data = cp.compile_model(model, fleet, created_s=1767225600)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    tech, _ = cp.load_key(str(d / "tech.key"))

    class Interrupted(Exception):
        pass

    def stop_half_way(done, total):
        if done > total // 2:
            raise Interrupted()
    link = PumpLink(port, timeout_s=5)
    try:
        session = Session(link, tech).login()
        with pytest.raises(Interrupted):
            ld.load(session, data, progress=stop_half_way)
        info = link.library_info()
        assert 0 < info["load_received"] < len(data) and info["load_size"] == len(data)
        held = info["load_received"]
    finally:
        link.close()
    out = ok(run_pumpctl("library", "load", "--port", port, "--key", d / "tech.key", path))
    assert "resumed from byte %d" % held in out, out
    assert "%d bytes sent" % (len(data) - held) in out, out
