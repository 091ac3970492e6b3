"""Scenario runner: a timed script of clinical events played on the virtual pump.

Owns the loop that plays a scenario -- a file ``sim/scenarios/<name>.json``
(preset, program or therapy mode, timed events, nurse actions, a patient
pressing BOLUS at random; format: ``sim/scenario_data.py`` and the schema next
to the files) -- on firmware + sim HAL + physics cycle by cycle, recording a
decimated trace, every alarm with the time of its cause, the patient's presses
with their outcome, and the volumes (per phase from the therapy mode's
report).  Portable: the same function runs under CPython (with the C core)
and under MicroPython (with the reference core), and ``main()`` prints the
result as JSON so the two runtimes can be compared.  Reports and plots are
made by ``host_tools/sim_report.py`` (CPython only).  ``SCENARIOS[name]`` is
kept for older callers: it loads the file.
"""
import json
import sys

import hal as hal_keys
from firmware.app import PumpApp
from firmware import alarms as al
from hal.sim import make_sim_hal
from sim.scenario_data import ScenarioError, list_scenarios, load_scenario, alarm_id as _alarm_id
from sim.world import World

# event kinds (the names used in the scenario files): [time_s, kind, argument]
CLAMP = "clamp"            # downstream clamp closed (True) / opened (False)
BUBBLE = "bubble"          # air bubble of `argument` uL enters upstream of the detector
ACK_RESUME = "ack_resume"  # nurse acknowledges the alarm and resumes
ACK = "ack"
CLEAR_AIR = "clear_air"    # nurse primes the air out of the line
PAUSE = "pause"
RESUME = "resume"
SILENCE = "silence"
DOOR_OPEN = "door_open"    # cassette door opened / closed
DOOR_CLOSE = "door_close"
BATTERY_SOC = "battery_soc"  # battery state of charge set (drained: low battery; swapped)
AIR_STUCK = "air_stuck"    # air detector output stuck on (True) / repaired (False)
KEY = "key"                # a key ("SELECT", "RUN_STOP", ...) pressed on the sim buttons
BOLUS = "bolus"            # a patient BOLUS press (same path as patient_presses)
EARLY_TAPER_DOWN = "early_taper_down"   # TPN: the nurse asks for the taper down now

_KEYS = {"RUN_STOP": hal_keys.KEY_RUN_STOP, "SELECT": hal_keys.KEY_SELECT,
         "BOLUS": hal_keys.KEY_BOLUS, "UP": hal_keys.KEY_UP, "DOWN": hal_keys.KEY_DOWN,
         "SILENCE": hal_keys.KEY_SILENCE}


# a BOLUS press not in the mode's counts this long after it: "unseen" (key path broken)
PRESS_SEEN_WITHIN_S = 5


class _ScenarioTable:
    """``SCENARIOS[name]``: the checked scenario file (read on use, from sim/scenarios/)."""

    def __getitem__(self, name):
        try:
            return load_scenario(name)
        except ScenarioError:
            raise KeyError(name)

    def __contains__(self, name):
        return name in list_scenarios()

    def __iter__(self):
        return iter(list_scenarios())

    def keys(self):
        return list_scenarios()

    def items(self):
        return [(name, load_scenario(name)) for name in list_scenarios()]


SCENARIOS = _ScenarioTable()


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
    elif kind == SILENCE:
        app.silence()
    elif kind == DOOR_OPEN:
        world.open_door(True)
    elif kind == DOOR_CLOSE:
        world.open_door(False)
    elif kind == BATTERY_SOC:
        world.battery.soc = float(arg)
    elif kind == AIR_STUCK:
        world.air_stuck = bool(arg)
    elif kind == KEY:
        app.hal.buttons.press(_KEYS[arg])
    elif kind == EARLY_TAPER_DOWN:
        app.early_taper_down()
    else:
        raise ScenarioError("unknown event kind %r" % (kind,))


def _cause_s(causes, alarm_id, raised_s):
    """The time of the cause of an alarm raised at ``raised_s``: the latest listed cause
    at or before it (a scenario may cause the same alarm several times)."""
    times = causes.get(alarm_id)
    if times is None:
        return None
    best = None
    for t in times:
        if t <= raised_s and (best is None or t > best):
            best = t
    return best


def _bolus_counts(app):
    """(granted, denied total, denied by reason) from the therapy mode's report."""
    mode = getattr(app, "mode", None)
    if mode is None:
        return None
    rep = mode.report()
    denied = rep.get("boluses_denied") or {}
    return rep.get("boluses_granted", 0), sum(denied.values()), denied


def _press_outcomes(before, after):
    """What the mode did with the presses between two counts: ["granted",
    "denied:<reason>", ...] (empty when nothing was answered)."""
    if before is None or after is None:
        return []
    out = ["granted"] * (after[0] - before[0])
    for reason in sorted(after[2]):
        out += ["denied:" + str(reason)] * (after[2][reason] - before[2].get(reason, 0))
    return out


def _therapy_summary(therapy):
    """(rate_ul_per_h, vtbi_ul, kvo_ul_per_h) that sum up a therapy spec for the report."""
    mode = therapy["mode"]
    if mode == "steps":
        rate = therapy["steps"][0][0]
        vtbi = 0
        for step in therapy["steps"]:
            vtbi += step[1]
    elif mode == "intermittent":
        rate = therapy["dose_rate_ul_per_h"]
        vtbi = therapy["dose_ul"] * therapy["doses"]
    elif mode == "pca":
        rate = therapy["basal_ul_per_h"]
        vtbi = therapy["vtbi_ul"]
    elif mode == "tpn":
        vtbi = therapy["vtbi_ul"]
        plateau_s = therapy["duration_s"] - (therapy["taper_up_s"] + therapy["taper_down_s"]) // 2
        rate = vtbi * 3600 // plateau_s if plateau_s > 0 else 0
    elif mode == "prime":
        rate = 0
        vtbi = therapy["volume_ul"]
    else:
        rate = therapy["rate_ul_per_h"]
        vtbi = therapy["vtbi_ul"]
    return rate, vtbi, therapy.get("kvo_ul_per_h", 0)


def run_scenario(name, trace_every_s=None, cycle_ms=1000, seed=1, spec=None, make_app=None):
    """Run one scenario to the end; returns a JSON-able result dict.

    ``spec``: an already loaded scenario (``sim.scenario_data.prepare``) instead of the
    file ``sim/scenarios/<name>.json``; ``make_app(hal)``: the application (PumpApp).
    The trace keeps ~720 rows whatever the duration (>= one per 10 s), so a
    24 h run fits the MicroPython unix port's default heap."""
    if spec is None:
        spec = load_scenario(name)
    duration_s = spec["duration_s"]
    if trace_every_s is None:
        trace_every_s = max(10, duration_s // 720)
    world = World(preset=spec["preset"], seed=spec.get("seed", seed),
                  battery_soc=spec.get("battery_soc", 1.0))
    hal = make_sim_hal(world, cycle_ms=cycle_ms)
    app = (make_app or PumpApp)(hal)
    app.boot()
    therapy = spec.get("therapy")
    if therapy is not None:
        if not hasattr(app, "program_therapy"):
            raise ScenarioError("%s: therapy mode %r needs app.program_therapy (the therapy "
                                "modes, firmware/therapy), not in this firmware"
                                % (spec.get("name", name), therapy["mode"]))
        # the therapy-mode contract (SR-TH-1); a copy, so the mode may keep or change it
        app.program_therapy(json.loads(json.dumps(therapy)))
    else:
        app.program_continuous(**spec["program"])
    app.start()
    # [t_s, order, kind, arg]: sorted by time, file order kept (MicroPython's sort is not
    # stable, so the order is part of the key); the random presses go in as BOLUS events
    events = []
    for i, event in enumerate(spec["events"]):
        events.append((event[0], i, event[1], event[2] if len(event) > 2 else None))
    n = len(events)
    for i, t in enumerate(spec.get("press_times_s", ())):
        events.append((t, n + i, BOLUS, "random"))
    events.sort(key=lambda e: e[0] * 1000000 + e[1])
    pp = spec.get("patient_presses") or {}
    press_via = pp.get("via", "keys")
    bounces = pp.get("bounces", 0)
    hold_ms = pp.get("hold_ms", 120)
    next_event = 0
    cycles = duration_s * 1000 // cycle_ms
    trace_every = max(1, trace_every_s * 1000 // cycle_ms)
    trace = []
    alarm_log = []          # [alarm_id, name, priority, raised_s, cleared_s]
    open_alarms = {}
    seen = set()
    releases = []           # [t_s, patient_ul at release, steps at release, released_ul]
    presses = []            # [t_s, "scripted" | "random", outcome]
    waiting = []            # presses whose outcome the mode's report has not shown yet
    counts = None           # the mode's bolus counts after the last cycle
    event_errors = []       # [t_s, kind, message]: an event the pump refused
    for i in range(cycles):
        t_s = i * cycle_ms // 1000
        pressed_now = False
        while next_event < len(events) and events[next_event][0] <= t_s:
            _, _, kind, arg = events[next_event]
            next_event += 1
            if kind == BOLUS:
                if pressed_now:       # one press per second: presses in it merge
                    continue
                pressed_now = True
                press = [t_s, "random" if arg == "random" else "scripted", None]
                presses.append(press)
                if not waiting:
                    counts = _bolus_counts(app)
                try:
                    if press_via == "api":
                        code = app.request_bolus()
                        after = _bolus_counts(app)
                        answered = _press_outcomes(counts, after)
                        press[2] = "%s (code %s)" % (answered[0] if answered else "unseen",
                                                     code)
                        counts = after
                    else:
                        # the patient's thumb on the BOLUS key: through the sim buttons
                        # (with bounce, the board's debouncer reports it a poll later)
                        if bounces:
                            hal.buttons.press(hal_keys.KEY_BOLUS, bounces=bounces,
                                              hold_ms=hold_ms)
                        else:
                            hal.buttons.press(hal_keys.KEY_BOLUS)
                        waiting.append(press)
                except Exception as e:
                    press[2] = "error"
                    event_errors.append([t_s, kind, "%s: %s" % (type(e).__name__, e)])
                continue
            try:
                _apply_event(app, world, kind, arg)
            except ScenarioError:
                raise
            except Exception as e:       # e.g. a resume the pump refuses: reported
                event_errors.append([t_s, kind, "%s: %s" % (type(e).__name__, e)])
            if kind == CLAMP and not arg:
                releases.append([t_s, world.delivered_to_patient_ul, world.steps_total, None])
        app.cycle()
        if waiting:
            after = _bolus_counts(app)
            for outcome in _press_outcomes(counts, after):   # oldest press first
                if waiting:
                    waiting.pop(0)[2] = outcome
            if waiting and t_s - waiting[0][0] >= PRESS_SEEN_WITHIN_S:
                waiting.pop(0)[2] = "unseen"        # the firmware never answered it
            counts = after
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
                          app.core.kvo_nl(), app.core.phase])
    for press in waiting:
        press[2] = "pending at the end"       # pressed in the run's last seconds
    causes = {}
    for cause_name, times in spec["causes"].items():
        causes[_alarm_id(cause_name)] = times if isinstance(times, list) else [times]
    alarms_out = []
    for alarm_id, alarm_name, prio, raised_s, cleared_s in alarm_log:
        cause_s = _cause_s(causes, alarm_id, raised_s)
        alarms_out.append({
            "id": alarm_id, "name": alarm_name, "priority": al.PRIORITY_NAMES[prio],
            "raised_s": raised_s, "cleared_s": cleared_s, "cause_s": cause_s,
            "latency_s": None if cause_s is None else raised_s - cause_s,
        })
    if therapy is not None:
        rate, vtbi, kvo = _therapy_summary(therapy)
    else:
        prog = spec["program"]
        rate, vtbi, kvo = prog["rate_ul_per_h"], prog["vtbi_ul"], prog.get("kvo_ul_per_h", 0)
    mode = getattr(app, "mode", None)
    # through JSON: the same types on both runtimes (reason keys as strings, lists)
    mode_report = json.loads(json.dumps(mode.report())) if mode is not None else None
    phases = mode_report.get("phases") if mode_report else None
    if phases:
        programmed_ul = 0
        for ph in phases:
            programmed_ul += ph["programmed_ul"]
        if therapy is not None and therapy["mode"] != "pca":
            vtbi = programmed_ul             # the mode's plan: doses and the gaps between
    elif therapy is not None:
        programmed_ul = vtbi
    else:
        programmed_ul = min(vtbi, rate * duration_s // 3600)
    granted = denied = None
    if mode_report:
        granted = mode_report.get("boluses_granted")
        denied = mode_report.get("boluses_denied")
    return {
        "scenario": spec.get("name", name),
        "title": spec["title"],
        "runtime": sys.implementation.name,
        "core_backend": app.core.backend,
        "duration_s": duration_s,
        "cycle_ms": cycle_ms,
        "therapy": therapy,
        "program": spec.get("program"),
        "rate_ul_per_h": rate,
        "vtbi_ul": vtbi,
        "kvo_ul_per_h": kvo,
        "programmed_ul": programmed_ul,
        "delivered_steps": app.core.delivered_steps,
        "kvo_steps": app.core.kvo_steps,
        "ustep_volume_pl": app.core.ustep_volume_pl,
        "delivered_nl": app.core.delivered_nl(),
        "kvo_nl": app.core.kvo_nl(),
        "delivered_ul": app.core.delivered_ul(),
        "kvo_ul": app.core.kvo_ul(),
        "pumped_ul": world.pumped_ul,
        "patient_ul": world.delivered_to_patient_ul,
        "alarms": alarms_out,
        "causes": spec["causes"],
        "events": [[e[0], e[2], e[3]] for e in events if e[2] != BOLUS],
        "phases": phases,
        "boluses_granted": granted,
        "boluses_denied": denied,
        "presses": presses,
        "event_errors": event_errors,
        "release_bolus_ul": [r[3] for r in releases],
        "log_records": app.log.last_seq,
        "trace_columns": ["t_s", "pumped_ul", "patient_ul", "downstream_mmhg",
                          "flow_ml_per_h", "core_nl", "phase"],
        "trace": trace,
    }


def main(argv=None):
    """``micropython -m sim.scenario NAME`` / ``python -m sim.scenario NAME``: JSON out."""
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv else "picc_occlusion"
    try:
        result = run_scenario(name)
    except ScenarioError as e:
        sys.stderr.write("scenario: %s\n" % e)
        sys.exit(2)
    json.dump(result, sys.stdout)   # streamed: no giant string on a small heap
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
