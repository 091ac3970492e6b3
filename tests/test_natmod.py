"""The MicroPython native module (device binding) against the reference, on the unix port.

Builds ``safety_core/natmod`` for x64 with the MicroPython tree in ``MPY_DIR``,
loads the .mpy into the real ``micropython`` executable, runs a differential walk
against the reference core and the whole portable firmware suite on the native
core.  Skips, saying why, when ``MPY_DIR`` is not set (CI has no MicroPython tree).
"""
import os
import shutil
import subprocess
import sys

import pytest

from tests.test_micropython_suite import REPO, micropython, micropython_env

MPY_DIR = os.environ.get("MPY_DIR")
pytestmark = pytest.mark.skipif(
    not MPY_DIR, reason="MPY_DIR not set: the native module needs a MicroPython source tree "
                        "(make natmod ARCH=x64 MPY_DIR=...); cffi and reference are tested")


@pytest.fixture(scope="module")
def native_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("natmod")
    src = os.path.join(REPO, "safety_core", "natmod")
    work = out / "build"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("build-*", "*.mpy"))
    shutil.copytree(os.path.join(REPO, "safety_core", "src"), out / "src")
    shutil.copytree(os.path.join(REPO, "safety_core", "include"), out / "include")
    proc = subprocess.run(["make", "ARCH=x64", "MPY_DIR=" + os.path.abspath(MPY_DIR),
                           "PYTHON=" + sys.executable], cwd=work, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lib = out / "lib"
    lib.mkdir()
    shutil.copy(work / "sc_native.mpy", lib / "sc_native.mpy")
    return str(lib)


def run_mpy(native_dir, *args):
    env = micropython_env(native_dir)
    return subprocess.run([micropython()] + list(args), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_native_module_is_picked_and_matches_reference(native_dir):
    proc = run_mpy(native_dir, "-c", "import safety_core as sc; print(sc.SafetyCore().backend)")
    assert proc.stdout.strip() == "native", proc.stderr
    proc = run_mpy(native_dir, "tests/mpy_scripts/native_vs_reference.py")
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0 and last == "20000 passed, 0 failed", proc.stdout + proc.stderr


def test_firmware_suite_passes_on_the_native_core(native_dir):
    proc = run_mpy(native_dir, "tests/mpy/run.py")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].endswith(" 0 failed")
