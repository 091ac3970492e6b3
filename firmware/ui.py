"""Display text for the 128x64 screen (8 lines x 21 characters).

Owns what the patient and nurse read: state, rate with its unit, volume
delivered of the VTBI, the sounding alarm and the drug/library line.  Pure
formatting: integer arithmetic only, no unit ever implied (SR-TH-3).
"""
import safety_core as sc
from firmware import alarms as al

WIDTH = 21


def ml(value_ul):
    """uL -> 'x.y mL' text without floats (rounded down to 0.1 mL)."""
    return "%d.%d mL" % (value_ul // 1000, (value_ul % 1000) // 100)


def ml_per_h(value_ul_per_h):
    return "%d.%d mL/h" % (value_ul_per_h // 1000, (value_ul_per_h % 1000) // 100)


def render(app):
    """The lines to show for the application's current state."""
    st = app.status()
    phase = st["phase"]
    lines = [sc.PHASE_NAMES[phase] if phase < len(sc.PHASE_NAMES) else "?"]
    if app.program is not None:
        rate = st["kvo_ul_per_h"] if phase == sc.PHASE_KVO else st["rate_ul_per_h"]
        lines.append("Rate " + ml_per_h(rate))
        lines.append("Vol %s/%s" % (ml(st["delivered_nl"] // 1000), ml(st["vtbi_ul"])))
        if st["kvo_nl"]:
            lines.append("KVO " + ml(st["kvo_nl"] // 1000))
    else:
        lines.append("No program")
    if st["alarm"]:
        lines.append("!" + al.PRIORITY_NAMES[st["alarm_priority"]] + " " + al.name(st["alarm"]))
    lines.append("P %d mmHg" % st["downstream_mmhg"])
    lines.append("Batt %d mV" % st["battery_mv"])
    return [line[:WIDTH] for line in lines[:8]]
