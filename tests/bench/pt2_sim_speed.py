"""PT-2: simulation speed, simulated time over wall time, on both runtimes.

Runs the ``make sim`` scenario (``picc_occlusion``, 2 h) and the PT-2 reference
(``continuous_24h``: 24 h at 10 mL/h with all monitoring) -- firmware + sim HAL +
physics, 1 s cycles of 100 core ticks -- on CPython with the C core and on the
MicroPython unix port with the reference core, against the PT-2 targets
(>= 10,000x and >= 100x).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from host_tools import sim_report as report  # noqa: E402

TARGETS = {"cpython": 10000.0, "micropython": 100.0}


def main():
    for name in ("picc_occlusion", "continuous_24h"):
        bench(name)
    return 0


def bench(name):
    from sim.scenario import SCENARIOS
    print("PT-2  %s: %s" % (name, SCENARIOS[name]["title"]))
    for runtime, run in (("cpython", report.run_cpython), ("micropython", report.run_micropython)):
        result = run(name)
        speed = result["duration_s"] / result["wall_s"]
        target = TARGETS[runtime]
        print("  %-12s core %-9s %6.2f s wall  %9.0fx real time  target >= %.0fx  ratio %.1f"
              % (runtime, result["core_backend"], result["wall_s"], speed, target,
                 speed / target))
        print("  %-12s delivered %.3f mL (programmed %.3f mL), alarms: %s" % (
            "", result["delivered_nl"] / 1e6, result["programmed_ul"] / 1000.0,
            ", ".join(a["name"] for a in result["alarms"]) or "none"))


if __name__ == "__main__":
    sys.exit(main())
