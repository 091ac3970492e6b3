"""Display text for the 128x64 screen (8 lines x 21 characters).

Owns what the patient and nurse read: state and the active drug library
(SR-LIB-4), the drug and its dose in the drug's unit, rate with its unit, volume
delivered of the VTBI, the sounding alarm, pressure and the battery time
remaining (``firmware/alarm_checks.py`` estimates it); while the
nurse programs, the menu's screen (``firmware/menu.py``) with the alarm line.
Pure formatting: integer arithmetic only, no unit ever implied (SR-TH-3).

Rendered every 10th application cycle, so it keeps the heap quiet (PT-8): the
fields are read from the application directly (no ``status()`` dict), a line
whose values have not changed since the last render reuses its text, the drug
lines are made once when the program is, and one list of lines is filled
again each time, so a steady screen allocates only the pressure line.
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
_HEAD = const(4)        # state and the active drug library
_SENSE = const(5)       # pressure and battery
_keys = [None] * 12
_texts = [""] * 6
_lines = []             # the one list every render fills (no new list per refresh)


def ml(value_ul):
    """uL -> 'x.y mL' text without floats (rounded down to 0.1 mL)."""
    return "%d.%d mL" % (value_ul // 1000, (value_ul % 1000) // 100)


def ml_per_h(value_ul_per_h):
    return "%d.%d mL/h" % (value_ul_per_h // 1000, (value_ul_per_h % 1000) // 100)


def battery_text(mmhg, min_left):
    """Pressure and the battery time remaining (SR-AL-1), e.g. 'P 12 mmHg B 71h05m'."""
    return "P %d mmHg B %dh%02dm" % (mmhg, min_left // 60, min_left % 60)


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


def _put(lines, n, text):
    """Line n of the reused list: replaced in place, appended only when the screen grows."""
    if n < len(lines):
        lines[n] = text
    else:
        lines.append(text)
    return n + 1


def _alarm_line(app, lines, n):
    top = app.alarms.top()
    if top:
        prio = al.priority(top)
        if _changed(_ALARM, top, prio):
            _texts[_ALARM] = _fit("!" + al.PRIORITY_NAMES[prio] + " " + al.name(top))
        n = _put(lines, n, _texts[_ALARM])
    return n


def _end(lines, n):
    while len(lines) > n:
        lines.pop()
    return lines


def render(app):
    """The lines to show for the application's current state (at most 8).

    The programming menu's screen while it is open (``firmware/menu.py``), else:
    state and active library; the drug and the dose it is given at, in its unit
    (programs from the library; the rate line is the dose for mL/h); rate; volume;
    KVO volume; the sounding alarm; pressure and battery.  The same list object is
    returned every time (filled again), so a steady screen allocates nothing but the
    pressure line."""
    lines = _lines
    menu = app.menu
    if menu is not None and menu.active:
        n = 0
        for text in menu.lines:
            n = _put(lines, n, text)
        return _end(lines, _alarm_line(app, lines, n))
    core = app.core
    phase = core.phase
    texts = _texts
    lib = app.library
    if _changed(_HEAD, phase, lib):
        head = sc.PHASE_NAMES[phase] if phase < len(sc.PHASE_NAMES) else "?"
        texts[_HEAD] = _fit(head + (" Lib %d v%d" % (lib.library_id, lib.version)
                                    if lib is not None else " No library"))
    n = _put(lines, 0, texts[_HEAD])
    prog = app.program
    if prog is not None:
        therapy = app.therapy
        if therapy is not None:               # from the library: made when programmed
            n = _put(lines, n, therapy.name_line)
            if therapy.dose_line:
                n = _put(lines, n, therapy.dose_line)
        rate = prog[2] if phase == sc.PHASE_KVO else prog[0]
        if _changed(_RATE, rate):
            texts[_RATE] = _fit("Rate " + ml_per_h(rate))
        n = _put(lines, n, texts[_RATE])
        dl = core.delivered_ul() // 100             # the 0.1 mL the line shows
        if _changed(_VOL, dl, prog[1]):
            texts[_VOL] = _fit("Vol %d.%d mL/%s" % (dl // 10, dl % 10, ml(prog[1])))
        n = _put(lines, n, texts[_VOL])
        kvo_ul = core.kvo_ul()
        if kvo_ul:
            if _changed(_KVO, kvo_ul):
                texts[_KVO] = _fit("KVO " + ml(kvo_ul))
            n = _put(lines, n, texts[_KVO])
    else:
        n = _put(lines, n, "No program")
    n = _alarm_line(app, lines, n)
    mmhg = app.last_downstream_mmhg
    left = app.checks.battery_min_left
    if left is None:                          # no battery reading yet: the voltage
        if _changed(_SENSE, mmhg, -app.last_battery_mv - 1):
            texts[_SENSE] = _fit("P %d mmHg B %d mV" % (mmhg, app.last_battery_mv))
    elif _changed(_SENSE, mmhg, left):
        texts[_SENSE] = _fit(battery_text(mmhg, left))
    n = _put(lines, n, texts[_SENSE])
    return _end(lines, n)
