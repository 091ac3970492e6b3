"""PT-3: flow accuracy, IEC 60601-2-24 trumpet method, on the ideal and the truthful mechanism.

The firmware (``app.program_continuous`` + the sim HAL + physics, 1 s cycles, as
``sim/scenario.py`` runs it; flow linearisation by the cam schedule,
``firmware/cam_schedule.py``, on by default) infuses at 1 and 10 mL/h for 2 h on
the PICC preset.  ``--no-linearisation`` measures the steps sent straight to the
motor (the firmware before the cam schedule).  The
volume reaching the patient (the "balance") is sampled every 30 s; over the second hour:

* overall error  A = 100 * (V_2nd_hour - V_programmed) / V_programmed;
* for each observation window P in 2, 5, 11, 19, 31 min (m = 2P samples), every window
  of m consecutive samples starting at each sample of the second hour that fits in it:
  E_p = 100 * (V_window - r * P) / (r * P); the trumpet is E_p(max) and E_p(min).

Mechanisms: ``ideal`` (the default world: fixed 50 uL stroke) and ``truthful``
(``sim/mechanism_truthful.py``: stroke scaled by outlet pressure and upstream head).
Conditions: nominal, +100 mmHg back-pressure at the outlet, the bag 50 cm below the pump.
Each cell is run at ``PHASES`` cam start phases evenly over the turn (SPEC PT-3: "at every
cam start phase"), and the table gives the range of the overall error and the worst
window errors over them.  PT-3 targets: overall within +/-0.5 %, worst 2-min window within
+/-2 %; ratio = worst |error| / target (<= 1 meets); PASS/FAIL per row at nominal
conditions (the targets are stated there; the off-nominal rows are reported).  Trumpet
curves (worst over phases) go to out/pt3_trumpet_<rate>.png.
Usage: ``pt3_trumpet.py [--no-linearisation] [--phases N] [--no-plot]``.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

RATES_UL_PER_H = (1000, 10000)
MECHANISMS = ("ideal", "truthful")
CONDITIONS = (
    ("nominal", {}),
    ("+100 mmHg back", {"back_pressure_mmhg": 100.0}),
    ("bag 50 cm below", {"bag_height_cm": -50.0}),
)
WINDOWS_MIN = (2, 5, 11, 19, 31)
SAMPLE_S = 30
DURATION_S = 7200
PHASES = 32                      # cam start phases, evenly over the turn (every 100 usteps)
TARGET_OVERALL_PCT = 0.5
TARGET_2MIN_PCT = 2.0
PRESET = "picc"
CYCLE_MS = 1000


def run_once(rate_ul_per_h, mechanism, conditions, phase_usteps, seed=1, linearise=True):
    """Balance readings (uL to the patient) every SAMPLE_S over DURATION_S."""
    from firmware.app import PumpApp
    from hal.sim import make_sim_hal
    from sim.world import World
    cond = dict(conditions)
    cond["cam_phase_usteps"] = phase_usteps
    world = World(preset=PRESET, seed=seed, mechanism=mechanism, conditions=cond)
    hal = make_sim_hal(world, cycle_ms=CYCLE_MS)
    if linearise:
        app = PumpApp(hal)
    else:                       # the core's steps straight to the motor (no board: no cam)
        import safety_core as sc
        from firmware.dose_driver import BatchDoseDriver
        core = sc.SafetyCore(hal.board.USTEP_VOLUME_PL)
        app = PumpApp(hal, core=core, driver=BatchDoseDriver(core, hal.stepper, CYCLE_MS))
    app.boot()
    app.program_continuous(rate_ul_per_h=rate_ul_per_h,
                           vtbi_ul=rate_ul_per_h * DURATION_S // 3600 + rate_ul_per_h)
    app.start()
    samples = [world.delivered_to_patient_ul]
    every = SAMPLE_S * 1000 // CYCLE_MS
    for i in range(1, DURATION_S * 1000 // CYCLE_MS + 1):
        app.cycle()
        world.advance(CYCLE_MS)
        if i % every == 0:
            samples.append(world.delivered_to_patient_ul)
    if app.alarms.active:
        raise RuntimeError("alarm during the PT-3 run: %r" % (list(app.alarms.active),))
    return samples


def trumpet(samples, rate_ul_per_h):
    """(overall %, {P: (Emax %, Emin %)}) over the second hour of ``samples``."""
    per_h = 3600 // SAMPLE_S
    start = len(samples) - 1 - per_h              # the second hour: the last 120 samples
    overall_ul = samples[-1] - samples[start]
    overall = 100.0 * (overall_ul - rate_ul_per_h) / rate_ul_per_h
    windows = {}
    for p in WINDOWS_MIN:
        m = p * 60 // SAMPLE_S
        expect = rate_ul_per_h * p / 60.0
        errs = [100.0 * (samples[j + m] - samples[j] - expect) / expect
                for j in range(start, len(samples) - m)]
        windows[p] = (max(errs), min(errs))
    return overall, windows


def measure(phases=PHASES, rates=RATES_UL_PER_H, mechanisms=MECHANISMS, conditions=CONDITIONS,
            linearise=True):
    """{(rate, mechanism, condition): [(phase, overall, windows), ...]}."""
    results = {}
    for rate in rates:
        for mech in mechanisms:
            for cname, cond in conditions:
                rows = []
                for k in range(phases):
                    phase = k * 3200 // phases
                    overall, windows = trumpet(run_once(rate, mech, cond, phase,
                                                        linearise=linearise), rate)
                    rows.append((phase, overall, windows))
                results[(rate, mech, cname)] = rows
    return results


def summarise(rows):
    """Overall (min, max) and per window (worst Emax, worst Emin) over the phases."""
    ov = [r[1] for r in rows]
    win = {}
    for p in WINDOWS_MIN:
        win[p] = (max(r[2][p][0] for r in rows), min(r[2][p][1] for r in rows))
    return (min(ov), max(ov)), win


def verdict(rows):
    """PASS when the overall error and the worst 2-min window meet PT-3's targets."""
    (omin, omax), win = summarise(rows)
    ok = (max(abs(omin), abs(omax)) <= TARGET_OVERALL_PCT and
          max(abs(win[2][0]), abs(win[2][1])) <= TARGET_2MIN_PCT)
    return "PASS" if ok else "FAIL"


def print_table(results, linearise=True, phases=PHASES):
    print("PT-3  flow accuracy, IEC 60601-2-24 trumpet (second hour, 30 s samples), %s preset,"
          " %s, %d cam start phases" % (PRESET, "flow linearisation (cam schedule)" if linearise
                                        else "no linearisation (steps straight to the motor)",
                                        phases))
    print("  targets: overall within +/-%.1f %%, worst 2-min window within +/-%.0f %%;"
          " ratio = worst |error| / target (<= 1 meets)" % (TARGET_OVERALL_PCT, TARGET_2MIN_PCT))
    head = ("  %-6s %-9s %-16s %16s %6s %16s %6s" % ("rate", "mechanism", "condition",
                                                     "overall %", "ratio", "2-min max/min %",
                                                     "ratio"))
    for p in WINDOWS_MIN[1:]:
        head += " %13s" % ("%d-min %%" % p)
    head += "  PT-3"
    print(head)
    for (rate, mech, cname), rows in results.items():
        (omin, omax), win = summarise(rows)
        o_ratio = max(abs(omin), abs(omax)) / TARGET_OVERALL_PCT
        w2 = win[2]
        w_ratio = max(abs(w2[0]), abs(w2[1])) / TARGET_2MIN_PCT
        line = "  %-6s %-9s %-16s %7.2f..%-7.2f %6.1f %+7.2f/%-+7.2f %6.2f" % (
            "%g" % (rate / 1000.0), mech, cname, omin, omax, o_ratio, w2[0], w2[1], w_ratio)
        for p in WINDOWS_MIN[1:]:
            line += " %+6.2f/%-+6.2f" % win[p]
        line += "  %s" % (verdict(rows) if cname == "nominal" else "(report)")
        print(line)
    print("  (rate in mL/h; overall: min..max over the phases; windows: largest E_max and"
          " smallest E_min over the phases; PT-3 verdict at nominal conditions, the targets'"
          " conditions)")
    nominal = [verdict(rows) for (rate, mech, cname), rows in results.items()
               if cname == "nominal"]
    print("  PT-3 at nominal conditions: %s (%d of %d rows pass)" % (
        "PASS" if all(v == "PASS" for v in nominal) else "FAIL",
        sum(v == "PASS" for v in nominal), len(nominal)))


def plot(results, out_dir, suffix=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    rates = sorted(set(k[0] for k in results))
    for rate in rates:
        fig, axes = plt.subplots(1, len(CONDITIONS), figsize=(5.0 * len(CONDITIONS), 4.2),
                                 sharey=True)
        for ax, (cname, _) in zip(axes, CONDITIONS):
            for mech, colour in (("ideal", "tab:blue"), ("truthful", "tab:red")):
                rows = results.get((rate, mech, cname))
                if not rows:
                    continue
                (omin, omax), win = summarise(rows)
                xs = list(WINDOWS_MIN)
                ax.plot(xs, [win[p][0] for p in xs], "o-", color=colour,
                        label="%s: E_max / E_min" % mech)
                ax.plot(xs, [win[p][1] for p in xs], "o-", color=colour)
                ax.axhspan(omin, omax, color=colour, alpha=0.25)
                ax.axhline((omin + omax) / 2.0, color=colour, ls="--", lw=1,
                           label="%s: overall %.2f..%.2f %%" % (mech, omin, omax))
            ax.axhline(TARGET_2MIN_PCT, color="k", ls=":", lw=1)
            ax.axhline(-TARGET_2MIN_PCT, color="k", ls=":", lw=1, label="PT-3 2-min target")
            ax.axhline(0.0, color="grey", lw=0.5)
            ax.set_title("%g mL/h, %s" % (rate / 1000.0, cname))
            ax.set_xlabel("observation window P, min")
            ax.set_xticks(list(WINDOWS_MIN))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        axes[0].set_ylabel("flow error, %% (worst over %d cam phases)" % PHASES)
        fig.suptitle("PT-3 trumpet curves, IEC 60601-2-24, second hour (%s preset)" % PRESET)
        fig.tight_layout()
        path = os.path.join(out_dir, "pt3_trumpet_%gmlh%s.png" % (rate / 1000.0, suffix))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    linearise = "--no-linearisation" not in argv
    phases = int(argv[argv.index("--phases") + 1]) if "--phases" in argv else PHASES
    t0 = time.time()
    results = measure(phases=phases, linearise=linearise)
    print_table(results, linearise, phases)
    if "--no-plot" not in argv:
        out_dir = os.path.join(ROOT, "out")
        if not os.path.isdir(out_dir):
            os.makedirs(out_dir)
        for path in plot(results, out_dir, "" if linearise else "_unlinearised"):
            print("  wrote %s" % os.path.relpath(path, ROOT))
    print("  %d runs of %d h simulated in %.1f s wall" % (
        sum(len(r) for r in results.values()), DURATION_S // 3600, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
