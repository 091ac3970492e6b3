"""PT-8 on the real MicroPython runtime: no heap allocation in the per-tick path and no
heap growth over an hour of firmware cycles.  (The steady-state figure is printed by
`make bench`; it is measured on the unix x64 port here, not on an RP2040.)
"""
import json
import subprocess

from tests.test_micropython_suite import REPO, micropython, micropython_env


def probe():
    env = micropython_env()
    proc = subprocess.run([micropython(), "tests/mpy_scripts/heap_probe.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_per_tick_path_allocates_nothing_and_heap_does_not_grow_PT_8():
    figures = probe()
    assert figures["core_backend"] == "reference"
    assert figures["per_tick_alloc_bytes"] == 0
    assert figures["heap_growth_bytes"] <= 1024
