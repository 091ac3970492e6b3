"""Display text for the 128x64 screen (8 lines x 21 characters).

Owns what the patient and nurse read: state, rate with its unit, volume
delivered of the VTBI, the sounding alarm and the drug/library line.  Pure
formatting: integer arithmetic only, no unit ever implied (SR-TH-3).

Rendered every 10th application cycle, so it keeps the heap quiet (PT-8): the
fields are read from the application directly (no ``status()`` dict), and a
line whose values have not changed since the last render reuses its text, so a
steady screen allocates only its list of lines and the pressure line.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from firmware import alarms as al

WIDTH = 21

# memoised lines: _texts[line] was made from the values _keys[2 * line], _keys[2 * line + 1]
_RATE = const(0)
_VOL = const(1)
_KVO = const(2)
_ALARM = const(3)
_BATT = const(4)
_keys = [None] * 10
_texts = [""] * 5


def ml(value_ul):
    """uL -> 'x.y mL' text without floats (rounded down to 0.1 mL)."""
    return "%d.%d mL" % (value_ul // 1000, (value_ul % 1000) // 100)


def ml_per_h(value_ul_per_h):
    return "%d.%d mL/h" % (value_ul_per_h // 1000, (value_ul_per_h % 1000) // 100)


def _fit(text):
    return text if len(text) <= WIDTH else text[:WIDTH]


def _changed(line, a, b=0):
    """True (and the values noted) when line's text must be made again."""
    keys = _keys
    i = line * 2
    if keys[i] == a and keys[i + 1] == b:
        return False
    keys[i] = a
    keys[i + 1] = b
    return True


def render(app):
    """The lines to show for the application's current state (at most 7 <= 8)."""
    core = app.core
    phase = core.phase
    texts = _texts
    lines = [sc.PHASE_NAMES[phase] if phase < len(sc.PHASE_NAMES) else "?"]
    prog = app.program
    if prog is not None:
        rate = prog[2] if phase == sc.PHASE_KVO else prog[0]
        if _changed(_RATE, rate):
            texts[_RATE] = _fit("Rate " + ml_per_h(rate))
        lines.append(texts[_RATE])
        dl = core.delivered_nl() // 100000          # the 0.1 mL the line shows
        if _changed(_VOL, dl, prog[1]):
            texts[_VOL] = _fit("Vol %d.%d mL/%s" % (dl // 10, dl % 10, ml(prog[1])))
        lines.append(texts[_VOL])
        kvo_nl = core.kvo_nl()
        if kvo_nl:
            if _changed(_KVO, kvo_nl // 1000):
                texts[_KVO] = _fit("KVO " + ml(kvo_nl // 1000))
            lines.append(texts[_KVO])
    else:
        lines.append("No program")
    top = app.alarms.top()
    if top:
        prio = al.priority(top)
        if _changed(_ALARM, top, prio):
            texts[_ALARM] = _fit("!" + al.PRIORITY_NAMES[prio] + " " + al.name(top))
        lines.append(texts[_ALARM])
    lines.append(_fit("P %d mmHg" % app.last_downstream_mmhg))
    mv = app.last_battery_mv
    if _changed(_BATT, mv):
        texts[_BATT] = _fit("Batt %d mV" % mv)
    lines.append(texts[_BATT])
    return lines
