"""The pump never holds a drug library on its heap, loading or looking up (SR-LIB-3, PT-7).

Runs tests/mpy_scripts/library_load_probe.py under MicroPython: the generated PT-7
library (30 care areas, 3,000 entries, ~156 KB) loaded over the service protocol into a
pump whose files are on disk.  Figures on the unix x64 port (objects about twice the
RP2040's): ~13 KB above the idle pump at the worst moment of the load, ~2 KB live for
the open library afterwards.  Bounds leave room, and stay far below the library's size.
"""
import json
import subprocess

from host_tools.library import check as ck
from host_tools.library import compiler as cp
from host_tools.library import source as sm
from host_tools.mpy_runtime import REPO, micropython_env, micropython_executable
from tests.bench.pt7_library import BENCH_KEY, generate_model

PEAK_ABOVE_BASE_MAX = 24 * 1024
LIBRARY_LIVE_MAX = 6 * 1024


def test_a_pt7_library_loads_in_a_few_kilobytes_of_heap_PT_7(tmp_path):
    src = tmp_path / "pt7.csv"
    src.write_text(sm.to_csv(generate_model()))
    model, problems = ck.check_file(str(src), {"library_id": 7, "version": 1})
    assert not ck.errors(problems)
    data = cp.compile_model(model, BENCH_KEY, created_s=1767225600)
    (tmp_path / "pt7.bin").write_bytes(data)
    (tmp_path / "pump").mkdir()
    proc = subprocess.run([micropython_executable(), "tests/mpy_scripts/library_load_probe.py",
                           str(tmp_path / "pt7.bin"), BENCH_KEY.hex(), str(tmp_path / "pump")],
                          cwd=REPO, env=micropython_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    f = json.loads(proc.stdout.strip().splitlines()[-1])
    assert f["library_bytes"] == len(data) > 150000
    assert f["peak_above_base"] <= PEAK_ABOVE_BASE_MAX, f
    assert f["live_after"] - f["base_live"] <= LIBRARY_LIVE_MAX, f
    # what was loaded is on "flash", whole
    slots = [p for p in (tmp_path / "pump").iterdir() if p.name.startswith("lib_")
             and p.name.endswith(".bin") and p.name != "lib_sel.bin"]
    assert [p.read_bytes() == data for p in slots] == [True]
