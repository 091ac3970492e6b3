"""PT-5: air in line -- every bubble >= the configured size caught at every rate up to 500 mL/h.

Firmware + sim HAL + physics (``tests/bench/occlusion_harness.py``; CPython, cffi C core),
``picc`` preset.  The program uses the application's default bubble limit
(``firmware.app.DEFAULT_BUBBLE_LIMIT_UL``, 100 uL, SR-CORE-5).  For bubbles of 1.0x and 1.5x
that size at 1, 100 and 500 mL/h, and for each firmware cycle (1000 ms sim, 100 ms device):
the infusion runs 60 s, one bubble is injected with its front 20 uL of fluid upstream of the
detector (``world.inject_bubble(volume_ul, 20)``), and the pump runs until the bubble and
100 uL of fluid behind it have been pumped past the detector (or an air alarm stops it),
then 30 s more.

* caught: an AIR_BUBBLE (or AIR_CUMULATIVE) alarm was raised and delivery stopped: the core
  is not RUNNING afterwards and the cam pumped no more than 0.01 uL forward in the 30 s
  after the alarm;
* air passed: the air that crossed the detector (``world.air.total_passed_ul``) by the end,
  i.e. before the stop when caught (in a missed case, the whole bubble);
* PASS per cell: caught.  Exits 0 whatever the figures.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import safety_core as sc  # noqa: E402
from firmware import alarms as al  # noqa: E402
from firmware.app import DEFAULT_BUBBLE_LIMIT_UL  # noqa: E402
from tests.bench import occlusion_harness as oh  # noqa: E402

RATES_UL_PER_H = (1000, 100000, 500000)
SIZES_X10 = (10, 15)              # 1.0x and 1.5x the configured size
CYCLES_MS = (1000, 100)
PRESET = "picc"
PRE_RUN_S = 60
DISTANCE_UL = 20.0
TAIL_UL = 100.0
CONFIRM_S = 30
AIR_ALARMS = (al.AIR_BUBBLE, al.AIR_CUMULATIVE)


def air_run(rate_ul_per_h, bubble_ul, bubble_limit_ul=DEFAULT_BUBBLE_LIMIT_UL, cycle_ms=1000,
            preset=PRESET, seed=1):
    p = oh.Pump(preset=preset, seed=seed, cycle_ms=cycle_ms)
    p.program(rate_ul_per_h, bubble_limit_ul=bubble_limit_ul)
    p.run_s(PRE_RUN_S)
    w = p.world
    # an alarm that stopped the pump before the bubble came (not an air alarm): reported
    pre_stop = [al.name(a) for a in p.app.alarms.active] if not p.running else []
    w.inject_bubble(bubble_ul, DISTANCE_UL)
    t_inj = w.t_ms
    start_pumped = w.pumped_ul
    need = DISTANCE_UL + bubble_ul + TAIL_UL
    cap_ms = t_inj + int(need * 3600000 / rate_ul_per_h) * 2 + 60000
    alarm_s = None
    alarm_name = None
    while w.t_ms < cap_ms:
        p.cycle_app()
        hit = [a for a in AIR_ALARMS if p.alarm(a)]
        if hit:
            alarm_s = (w.t_ms - t_inj) / 1000.0
            alarm_name = al.name(hit[0])
            p.advance()
            break
        p.advance()
        if w.pumped_ul - start_pumped >= need and not w.air.bubbles:
            break
    stopped = False
    if alarm_s is not None:
        pumped_at = w.pumped_ul
        running = False
        for _ in range(CONFIRM_S * 1000 // cycle_ms):
            p.step()
            running = running or p.app.core.phase == sc.PHASE_RUNNING
        stopped = not running and w.pumped_ul - pumped_at <= 0.01
    return {
        "rate_ul_per_h": rate_ul_per_h, "bubble_ul": bubble_ul, "limit_ul": bubble_limit_ul,
        "cycle_ms": cycle_ms, "alarm": alarm_name, "alarm_s": alarm_s, "stopped": stopped,
        "caught": alarm_s is not None and stopped, "air_passed_ul": w.air.total_passed_ul,
        "core_backend": p.app.core.backend, "stopped_before": pre_stop,
        "other_alarms": [al.name(a) for a in p.app.alarms.active if a not in AIR_ALARMS],
    }


def main():
    t0 = time.time()
    rows = []
    for cyc in CYCLES_MS:
        for rate in RATES_UL_PER_H:
            for x10 in SIZES_X10:
                rows.append(air_run(rate, DEFAULT_BUBBLE_LIMIT_UL * x10 / 10.0, cycle_ms=cyc))
    print("PT-5  air in line: every bubble >= the configured size (%d uL, the default) caught"
          " at every rate up to 500 mL/h" % DEFAULT_BUBBLE_LIMIT_UL)
    print("  %-7s %-9s %-6s %-13s %9s %8s %12s  %s" % (
        "cycle", "bubble uL", "mL/h", "alarm", "after s", "stopped", "air past uL", "PT-5"))
    for r in rows:
        print("  %-7s %-9g %-6g %-13s %9s %8s %12.1f  %s" % (
            "%d ms" % r["cycle_ms"], r["bubble_ul"], r["rate_ul_per_h"] / 1000.0,
            r["alarm"] or "none", "-" if r["alarm_s"] is None else "%.1f" % r["alarm_s"],
            "yes" if r["stopped"] else "no", r["air_passed_ul"],
            "PASS" if r["caught"] else "FAIL (pump stopped before the bubble)"
            if r["stopped_before"] else "FAIL (missed)"))
    for r in rows:
        if r["stopped_before"] or r["other_alarms"]:
            print("  %d ms, %g uL at %g mL/h: other alarms %s%s" % (
                r["cycle_ms"], r["bubble_ul"], r["rate_ul_per_h"] / 1000.0,
                ", ".join(r["other_alarms"]) or "-",
                "; the pump was already stopped at the injection (%s)"
                % ", ".join(r["stopped_before"]) if r["stopped_before"] else ""))
    print("  %d of %d cells caught; %s core; after s: from the injection (front %g uL upstream)"
          "; %.1f s wall" % (sum(1 for r in rows if r["caught"]), len(rows),
                            rows[0]["core_backend"], DISTANCE_UL, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
