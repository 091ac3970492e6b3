"""PT-8: heap use of the firmware on MicroPython (unix x64 port, reference core).

Prints the bytes allocated per core tick (target 0), per application cycle in each
configuration (target <= 64), the heap growth over a simulated hour, the steady-state
live heap with the application running (target <= 64 KB on the board), and the smallest
``micropython -X heapsize`` in which a 24 h infusion runs (tests/mpy_scripts/heap_24h.py),
with the firmware as .mpy files (as on the board) and from source.

The figures are for the 64-bit unix port: GC blocks of 32 B (16 B on the RP2040), objects
about twice the size, every module's bytecode on the heap.  They are upper bounds of about
twice the board's, not RP2040 figures; measuring on a board is left to a hardware session.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.test_micropython_heap import (HEAP_24H_GUARD_KIB, HEAP_24H_MIN_KIB,  # noqa: E402
                                         compile_mpy, cycle_probe, micropython, probe,
                                         run_24h)

# The unix port's qstr pools double in size: with this firmware's start-up the 6th holds
# up to 1260 dynamic qstrs, the 1261st allocates a 7th of 14.2 KB in one block (x64).
QSTR_POOL_7_AT = 1261

CONFIGS = (
    ("idle", "idle, no program"),
    ("running", "running 10 mL/h"),
    ("running_alarm_medium", "running, BATTERY LOW sounding"),
    ("paused_alarm_high", "paused, DOOR OPEN sounding"),
    ("running_status_every_cycle", "running, STATUS request every cycle"),
    ("running_sim_hal", "running, sensors from the sim's float physics"),
)


def smallest_heap_kib(mpy_dir=None, lo=16, hi=1024, steady=4):
    """Smallest heapsize (KiB) for the 24 h run: bisection in 1 KiB steps on 1 h runs
    (fast; the need is set at start-up), then the 24 h run confirms, one KiB up at a
    time if it needs more.  The unix port's conservative collector makes success not
    quite monotonic in the size (a size can fail between two that pass, by the heap and
    stack layout), so the figure is the smallest N from which `steady` consecutive
    sizes all run."""
    if not run_24h(hi, mpy_dir, hours=1)[0]:
        raise RuntimeError("the 1 h run fails even in %d KiB" % hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run_24h(mid, mpy_dir, hours=1)[0]:
            hi = mid
        else:
            lo = mid
    k = hi + 1
    while k < hi + steady:
        if not run_24h(k, mpy_dir, hours=1)[0]:
            hi = k + 1
        k += 1
    while True:
        ok, result = run_24h(hi, mpy_dir)
        if ok:
            return hi, result
        hi += 1


def qstr_figures(mpy_dir):
    """(dynamic qstrs, pools, pool bytes) at the end of a 1 h run of heap_24h.py (.mpy)."""
    code = ("import sys, micropython\nsys.path.insert(0, 'run')\nimport heap_24h\n"
            "heap_24h.main(1)\nmicropython.qstr_info()\n")
    proc = subprocess.run([micropython(), "-X", "heapsize=1024K", "-c", code], cwd=mpy_dir,
                          env=dict(os.environ, MICROPYPATH=".frozen:."), capture_output=True,
                          text=True, timeout=300)
    m = re.search(r"n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=\d+, n_total_bytes=(\d+)",
                  proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError("qstr_info run failed: %s" % proc.stderr[-2000:])
    return int(m.group(2)), int(m.group(1)), int(m.group(3))


def main():
    f = probe()
    print("PT-8  firmware heap on MicroPython unix x64 (%s core)" % f["core_backend"])
    print("  allocation per tick       %6d B  target 0" % f["per_tick_alloc_bytes"])
    print("  heap growth over 1 h      %6d B" % f["heap_growth_bytes"])
    print("  steady-state live heap    %6d B  target <= 65536 B on the board  ratio %.2f "
          "(x64 port, bytecode on heap; not an RP2040 figure)" %
          (f["steady_heap_bytes"], f["steady_heap_bytes"] / 65536.0))
    c = cycle_probe(1000)
    print("  bytes allocated per application cycle (x64; target <= 64):")
    print("    %-46s %7s %9s %9s" % ("configuration", "cycle", "display", "amortised"))
    for key, title in CONFIGS:
        r = c[key]
        print("    %-46s %5d B %7d B %7d B" % (title, r["cycle_b"], r["display_b"],
                                                r["amortised_b"]))
    print("    (cycle: worst cycle without a display refresh; display: the refresh every "
          "10th cycle; amortised: mean)")
    with tempfile.TemporaryDirectory() as tmp:
        mpy_dir = compile_mpy(os.path.join(tmp, "mpy"))
        kib, result = smallest_heap_kib(mpy_dir)
        print("  smallest heap for 24 h at 10 mL/h, firmware as .mpy: %4d KiB  "
              "(live at the end %d B; guard in tests: %d KiB = minimum %d + margin)" %
              (kib, result["heap_bytes"], HEAP_24H_GUARD_KIB, HEAP_24H_MIN_KIB))
        n_qstr, n_pool, pool_bytes = qstr_figures(mpy_dir)
        print("  dynamic qstrs after 1 h: %d in %d pools of %d B (a 7th pool of ~14 KB from "
              "qstr %d on: %s)" % (n_qstr, n_pool, pool_bytes, QSTR_POOL_7_AT,
                                 "allocated" if n_qstr >= QSTR_POOL_7_AT else
                                 "%d qstrs away" % (QSTR_POOL_7_AT - n_qstr)))
        if kib > HEAP_24H_MIN_KIB:
            print("    above the %d KiB recorded in tests/test_micropython_heap.py: "
                  "the firmware or the sim grew" % HEAP_24H_MIN_KIB)
    kib_src, _ = smallest_heap_kib(None)
    print("  smallest heap for 24 h at 10 mL/h, firmware from source: %4d KiB" % kib_src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
