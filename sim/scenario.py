"""Scenario runner: a timed script of clinical events played on the virtual pump.

Owns the scenario definitions (data: preset, program, timed events, nurse
actions) and the loop that runs firmware + sim HAL + physics cycle by cycle,
recording a decimated trace, every alarm with the time of its cause, and the
volumes.  Portable: the same function runs under CPython (with the C core)
and under MicroPython (with the reference core), and ``main()`` prints the
result as JSON so the two runtimes can be compared.  Reports and plots are
made by ``host_tools/sim_report.py`` (CPython only).
"""
import json
import sys

from firmware.app import PumpApp
from firmware import alarms as al
from hal.sim import make_sim_hal
from sim.world import World

# event kinds: (time_s, kind, argument)
CLAMP = "clamp"            # downstream clamp closed (True) / opened (False)
BUBBLE = "bubble"          # air bubble of `argument` uL enters upstream of the detector
ACK_RESUME = "ack_resume"  # nurse acknowledges the alarm and resumes
ACK = "ack"
CLEAR_AIR = "clear_air"    # nurse primes the air out of the line
PAUSE = "pause"
RESUME = "resume"

SCENARIOS = {
    "picc_occlusion": {
        "title": "10 mL/h for 2 h on a PICC line; downstream occlusion at 60 min, "
                 "cleared at 75 min",
        "preset": "picc",
        "duration_s": 7200,
        "program": {"rate_ul_per_h": 10000, "vtbi_ul": 20000, "kvo_ul_per_h": 1000,
                    "occlusion_limit_mmhg": 300, "bubble_limit_ul": 100},
        "events": [(3600, CLAMP, True), (4500, CLAMP, False), (4530, ACK_RESUME, None)],
        "causes": {al.OCCLUSION_DOWN: 3600},
    },
    "continuous_24h": {
        "title": "10 mL/h for 24 h on a PICC line, all monitoring on (PT-2)",
        "preset": "picc",
        "duration_s": 86400,
        "program": {"rate_ul_per_h": 10000, "vtbi_ul": 250000, "kvo_ul_per_h": 0,
                    "occlusion_limit_mmhg": 300, "bubble_limit_ul": 100},
        "events": [],
        "causes": {},
    },
    "air_bubble": {
        "title": "100 mL/h on a peripheral IV; a 150 uL bubble reaches the detector",
        "preset": "peripheral",
        "duration_s": 1800,
        "program": {"rate_ul_per_h": 100000, "vtbi_ul": 100000, "kvo_ul_per_h": 0,
                    "occlusion_limit_mmhg": 300, "bubble_limit_ul": 100},
        "events": [(600, BUBBLE, 150), (880, CLEAR_AIR, None), (900, ACK_RESUME, None)],
        "causes": {al.AIR_BUBBLE: 600},
    },
}


def _apply_event(app, world, kind, arg):
    if kind == CLAMP:
        world.clamp(arg)
    elif kind == BUBBLE:
        world.inject_bubble(arg)
    elif kind == CLEAR_AIR:
        world.clear_air()
    elif kind == ACK:
        app.acknowledge()
    elif kind == ACK_RESUME:
        app.acknowledge()
        app.start()
    elif kind == PAUSE:
        app.pause()
    elif kind == RESUME:
        app.start()


def run_scenario(name, trace_every_s=None, cycle_ms=1000, seed=1):
    """Run one scenario to the end; returns a JSON-able result dict.

    The trace keeps ~720 rows whatever the duration (>= one per 10 s), so a
    24 h run fits the MicroPython unix port's default heap."""
    spec = SCENARIOS[name]
    if trace_every_s is None:
        trace_every_s = max(10, spec["duration_s"] // 720)
    world = World(preset=spec["preset"], seed=seed)
    hal = make_sim_hal(world, cycle_ms=cycle_ms)
    app = PumpApp(hal)
    app.boot()
    app.program_continuous(**spec["program"])
    app.start()
    events = sorted(spec["events"], key=lambda e: e[0])
    next_event = 0
    cycles = spec["duration_s"] * 1000 // cycle_ms
    trace_every = max(1, trace_every_s * 1000 // cycle_ms)
    trace = []
    alarm_log = []          # [alarm_id, name, priority, raised_s, cleared_s]
    open_alarms = {}
    seen = set()
    releases = []           # [t_s, patient_ul at release, steps at release, released_ul]
    for i in range(cycles):
        t_s = i * cycle_ms // 1000
        while next_event < len(events) and events[next_event][0] <= t_s:
            _, kind, arg = events[next_event]
            _apply_event(app, world, kind, arg)
            if kind == CLAMP and not arg:
                releases.append([t_s, world.delivered_to_patient_ul, world.steps_total, None])
            next_event += 1
        app.cycle()
        before_ul = world.delivered_to_patient_ul
        world.advance(cycle_ms)
        for rel in releases:
            # the bolus on release: what reaches the patient before the pump moves again
            if rel[3] is None:
                if world.steps_total != rel[2]:
                    rel[3] = before_ul - rel[1]
                elif t_s - rel[0] >= 300:
                    rel[3] = world.delivered_to_patient_ul - rel[1]
        active = app.alarms.active
        if len(active) != len(seen) or any(a not in seen for a in active):
            for alarm_id in active:
                if alarm_id not in open_alarms:
                    row = [alarm_id, al.name(alarm_id), al.priority(alarm_id), t_s, None]
                    open_alarms[alarm_id] = row
                    alarm_log.append(row)
            for alarm_id in list(open_alarms):
                if alarm_id not in active:
                    open_alarms.pop(alarm_id)[4] = t_s
            seen = set(active)
        if i % trace_every == 0:
            row = world.trace_row()
            trace.append([t_s, row[1], row[2], row[3], row[4], app.core.delivered_nl() +
                          app.core.kvo_nl()])
    causes = spec["causes"]
    alarms_out = []
    for alarm_id, alarm_name, prio, raised_s, cleared_s in alarm_log:
        cause_s = causes.get(alarm_id)
        alarms_out.append({
            "id": alarm_id, "name": alarm_name, "priority": al.PRIORITY_NAMES[prio],
            "raised_s": raised_s, "cleared_s": cleared_s, "cause_s": cause_s,
            "latency_s": None if cause_s is None else raised_s - cause_s,
        })
    prog = spec["program"]
    return {
        "scenario": name,
        "title": spec["title"],
        "runtime": sys.implementation.name,
        "core_backend": app.core.backend,
        "duration_s": spec["duration_s"],
        "cycle_ms": cycle_ms,
        "rate_ul_per_h": prog["rate_ul_per_h"],
        "vtbi_ul": prog["vtbi_ul"],
        "kvo_ul_per_h": prog["kvo_ul_per_h"],
        "programmed_ul": min(prog["vtbi_ul"],
                             prog["rate_ul_per_h"] * spec["duration_s"] // 3600),
        "delivered_steps": app.core.delivered_steps,
        "kvo_steps": app.core.kvo_steps,
        "ustep_volume_pl": app.core.ustep_volume_pl,
        "delivered_nl": app.core.delivered_nl(),
        "kvo_nl": app.core.kvo_nl(),
        "pumped_ul": world.pumped_ul,
        "patient_ul": world.delivered_to_patient_ul,
        "alarms": alarms_out,
        "release_bolus_ul": [r[3] for r in releases],
        "log_records": app.log.last_seq,
        "trace_columns": ["t_s", "pumped_ul", "patient_ul", "downstream_mmhg",
                          "flow_ml_per_h", "core_nl"],
        "trace": trace,
    }


def main(argv=None):
    """``micropython -m sim.scenario NAME`` / ``python -m sim.scenario NAME``: JSON out."""
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv else "picc_occlusion"
    json.dump(run_scenario(name), sys.stdout)   # streamed: no giant string on a small heap
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
