"""PT-2: simulation speed of a 24 h continuous infusion with all monitoring on.

Runs the ``continuous_24h`` scenario (firmware + sim HAL + physics, 1 s cycles,
100 core ticks per cycle) on CPython with the C core and on the MicroPython unix
port with the reference core, and prints simulated time over wall time against
the PT-2 targets (>= 10,000x and >= 100x).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from sim import report  # noqa: E402

TARGETS = {"cpython": 10000.0, "micropython": 100.0}


def main():
    print("PT-2  24 h continuous infusion at 10 mL/h, all monitoring on")
    for runtime, run in (("cpython", report.run_cpython), ("micropython", report.run_micropython)):
        result = run("continuous_24h")
        speed = result["duration_s"] / result["wall_s"]
        target = TARGETS[runtime]
        print("  %-12s core %-9s %6.2f s wall  %9.0fx real time  target >= %.0fx  ratio %.1f"
              % (runtime, result["core_backend"], result["wall_s"], speed, target,
                 speed / target))
        print("  %-12s delivered %.3f mL (programmed %.3f mL), alarms: %s" % (
            "", result["delivered_nl"] / 1e6, result["programmed_ul"] / 1000.0,
            ", ".join(a["name"] for a in result["alarms"]) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
