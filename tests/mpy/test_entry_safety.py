"""Entry safety on the pump's buttons (SR-TH-6): debounced keys (anchor failure: key bounce
turned 4.8 into 44.8 mL/h), every edit confirmed, an unconfirmed edit reverts after 15 s on
every edit screen, and a 10x / a tenth change against the value before is warned (logged)
and needs a second confirmation.

Bouncy presses go through the board's debouncer (hal.devices.DebouncedButtons) on its
pin-IRQ path: the sim's buttons replay the contact's edges at their world times.
Portable: CPython and MicroPython (tests/mpy/run.py).
"""
import hal
import safety_core as sc
from firmware import events as ev
from firmware import menu as mn
from firmware import ui
from hal import devices
from tests.mpy.library_pump import (BACK, DOWN, RUN, SELECT, UP, events, make_pump, press,
                                    run_for)


# ---- the debouncer itself, with fake pins and a fake clock ------------------------------
from tests.mpy.test_hal_devices import FakePin as _Pin  # noqa: E402  (one fake pin)


class _Ticks:
    def __init__(self):
        self.ms = 1000

    def __call__(self):
        return self.ms


def _keys():
    pin = _Pin()
    t = _Ticks()
    keys = devices.DebouncedButtons([(hal.KEY_UP, pin)], ticks_ms=t)
    return keys, pin, t


def _edges(pin, t, levels, step_ms=1):
    """Edges as the pin IRQ sees them: each level, ``step_ms`` apart."""
    for level in levels:
        pin.v = level
        pin.handler(pin)
        t.ms += step_ms


def test_bouncy_press_is_one_press_on_the_irq_path_SR_TH_6():
    keys, pin, t = _keys()
    assert pin.handler is not None                       # both edges time-stamped
    _edges(pin, t, [0, 1, 0, 1, 0])                      # closes with 2 bounces in 5 ms
    assert keys.poll() == 0                              # not stable yet: 1 ms
    t.ms += 30
    assert keys.poll() == hal.KEY_UP                     # stable 25 ms: one press
    for _ in range(20):                                  # held 2 s: no repeat
        t.ms += 100
        assert keys.poll() == 0
    _edges(pin, t, [1, 0, 1, 0, 1])                      # opens with bounces
    t.ms += 100
    assert keys.poll() == 0                              # the release is not a press


def test_glitch_while_held_is_not_a_second_press_SR_TH_6():
    keys, pin, t = _keys()
    _edges(pin, t, [0])
    t.ms += 100
    assert keys.poll() == hal.KEY_UP
    _edges(pin, t, [1, 0], step_ms=10)                   # 10 ms open: contact chatter
    assert keys.poll() == 0
    t.ms += 100
    assert keys.poll() == 0


def test_short_press_between_polls_is_caught_once_SR_TH_6():
    keys, pin, t = _keys()
    _edges(pin, t, [0, 1, 0])                            # bouncy close
    t.ms += 60                                           # 60 ms tap, no poll meanwhile
    _edges(pin, t, [1, 0, 1])                            # bouncy open
    t.ms += 40
    assert keys.poll() == hal.KEY_UP                     # latched by the IRQ
    t.ms += 100
    assert keys.poll() == 0


def test_bounce_shorter_than_the_debounce_time_is_no_press_SR_TH_6():
    keys, pin, t = _keys()
    _edges(pin, t, [0, 1, 0, 1], step_ms=4)              # 16 ms of chatter, then open
    t.ms += 100
    assert keys.poll() == 0


def test_without_pin_irqs_two_polls_debounce_SR_TH_6():
    pin = _Pin()
    keys = devices.DebouncedButtons([(hal.KEY_UP, pin)], ticks_ms=_Ticks(), irq=False)
    pin.v = 0
    assert keys.poll() == 0
    pin.v = 1                                            # one-poll glitch
    assert keys.poll() == 0
    pin.v = 0
    assert [keys.poll() for _ in range(5)].count(hal.KEY_UP) == 1


# ---- through the menu, on the sim's contacts -------------------------------------------------
def _basic_infusion_at_4_8(app, world):
    """The basic infusion's rate screen, starting from the last program's 4.8 mL/h."""
    app.program_from_library("Adult home", 0, None, 4800, "mL/h", 100000)
    assert press(app, world, SELECT)[2] == ">Adult home"
    lines = press(app, world, SELECT)
    assert lines[1:3] == ["Basic infusion", ">Basic infusion"] or \
        lines[2] == ">Basic infusion", lines
    lines = press(app, world, SELECT)
    assert lines[1:3] == ["Dose", ">4.8 mL/h"], lines
    return lines


def _bouncy(app, world, keys, bounces=3, hold_ms=150, cycles=2):
    app.hal.buttons.press(keys, bounces=bounces, hold_ms=hold_ms)
    for _ in range(cycles):
        app.cycle()
        world.advance(app.cycle_ms)
    return list(ui.render(app))


def test_bouncy_up_while_editing_4_8_mL_h_is_one_step_never_44_8_SR_TH_6():
    """SPEC anchor: key bounce turned 4.8 into 44.8 mL/h."""
    app, world, h = make_pump()
    _basic_infusion_at_4_8(app, world)
    lines = _bouncy(app, world, UP, bounces=5)
    assert lines[2] == ">4.9 mL/h", lines
    lines = _bouncy(app, world, UP, bounces=5, hold_ms=3000, cycles=5)   # held 3 s
    assert lines[2] == ">5 mL/h", lines                  # one step: no auto-repeat
    lines = _bouncy(app, world, DOWN, bounces=5)
    lines = _bouncy(app, world, DOWN, bounces=5)
    assert lines[2] == ">4.8 mL/h", lines
    # a bouncy SELECT confirms one screen: the volume screen, not past it
    lines = _bouncy(app, world, SELECT, bounces=5)
    assert lines[1] == "Volume to infuse", lines
    assert app.menu.screen == mn.S_VTBI
    _bouncy(app, world, SELECT, bounces=5)
    _bouncy(app, world, SELECT, bounces=5)
    assert app.program[0] == 4800, app.program           # 4.8 mL/h, never 44.8
    _bouncy(app, world, RUN, bounces=5)
    assert app.core.phase == sc.PHASE_RUNNING
    _bouncy(app, world, RUN, bounces=5)                  # one press: paused, not toggled back
    assert app.core.phase == sc.PHASE_PAUSED


# ---- every edit confirmed, reverted after 15 s unconfirmed -------------------------------
def test_unconfirmed_weight_dose_and_volume_edits_revert_after_15_s_SR_TH_6():
    app, world, h = make_pump()
    press(app, world, SELECT)
    press(app, world, UP)                                # Inotropes
    press(app, world, SELECT)                            # Milrinone
    lines = press(app, world, SELECT)
    assert lines[1:3] == ["Patient weight", ">--- kg"], lines
    press(app, world, UP)
    run_for(app, world, 16)
    assert app.menu.value == 0 and "reverted" in " ".join(app.menu.lines), app.menu.lines
    assert (ev.ENTRY_EDIT_REVERTED, mn.F_WEIGHT, 0) in events(app)
    press(app, world, UP, 401)                           # 70 kg
    lines = press(app, world, SELECT)
    assert lines[1] == "Dose", lines
    start = app.menu.value
    press(app, world, UP, 2)
    run_for(app, world, 16)
    assert app.menu.value == start and app.menu.weight_g == 70000
    assert (ev.ENTRY_EDIT_REVERTED, mn.F_DOSE, start) in events(app)
    lines = press(app, world, SELECT)
    assert lines[1] == "Volume to infuse", lines
    vstart = app.menu.value
    press(app, world, DOWN, 3)
    run_for(app, world, 14)
    assert app.menu.value != vstart                      # 14 s: not yet
    run_for(app, world, 2)
    assert app.menu.value == vstart
    assert (ev.ENTRY_EDIT_REVERTED, mn.F_VTBI, vstart) in events(app)
    assert app.program is None                           # nothing taken unconfirmed


def test_warning_left_unconfirmed_goes_back_to_the_value_before_SR_TH_6():
    app, world, h = make_pump()
    press(app, world, SELECT)
    press(app, world, SELECT)
    press(app, world, UP)                                # Vancomycin
    press(app, world, SELECT)
    lines = press(app, world, SELECT)
    assert lines[2] == ">500 mg/h", lines
    app.menu.value = 40000                               # a tenth or less of 500
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE DOSE", lines
    run_for(app, world, 16)
    assert app.menu.screen == mn.S_DOSE and app.menu.value == 500000, app.menu.lines
    assert "reverted" in " ".join(app.menu.lines)


# ---- 10x / a tenth ----------------------------------------------------------------------------
def _to_vancomycin_vtbi(app, world):
    press(app, world, SELECT)
    press(app, world, SELECT)
    press(app, world, UP)
    press(app, world, SELECT)
    press(app, world, SELECT)                            # the dose screen at 500 mg/h
    lines = press(app, world, SELECT)                    # unchanged: no warning
    assert lines[1:3] == ["Volume to infuse", ">500 mL"], lines


def test_tenfold_volume_both_directions_warned_and_logged_SR_TH_6():
    app, world, h = make_pump()
    _to_vancomycin_vtbi(app, world)
    app.menu.value = 50000                               # 50 mL: a tenth of 500 mL
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE VOLUME", lines
    assert "50 mL is a tenth or less of the volume before" in " ".join(lines), lines
    assert (ev.ENTRY_TENFOLD_WARNED, mn.F_VTBI, 50000) in events(app)
    lines = press(app, world, BACK)                      # change it: still unconfirmed
    assert app.menu.screen == mn.S_VTBI and lines[2] == ">50 mL", lines
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE VOLUME", lines
    lines = press(app, world, SELECT)                    # the explicit second confirmation
    assert lines[-1] == "SELECT=program" and "VTBI 50 mL" in lines, lines
    assert (ev.ENTRY_TENFOLD_CONFIRMED, mn.F_VTBI, 50000) in events(app)
    press(app, world, SELECT)
    assert app.program[1] == 50000
    # and upwards: from 50 mL (the previous program) to 500 mL
    press(app, world, BACK)                              # home
    press(app, world, SELECT)
    press(app, world, SELECT)
    press(app, world, UP)
    press(app, world, SELECT)
    press(app, world, SELECT)
    lines = press(app, world, SELECT)
    assert lines[2] == ">50 mL", lines                   # the previous program's volume
    app.menu.value = 500000
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE VOLUME", lines
    assert "500 mL is 10x or more the volume before" in " ".join(lines), lines


def _to_epoprostenol_weight(app, world):
    press(app, world, SELECT)
    press(app, world, UP)                                # Inotropes
    press(app, world, SELECT)
    for _ in range(3):
        lines = press(app, world, UP)
        if lines[2] == ">Epoprostenol":
            return press(app, world, SELECT)
    assert False, lines


def test_tenfold_weight_warned_against_the_previous_program_SR_TH_6():
    app, world, h = make_pump()
    app.program_from_library("Inotropes", 703, None, 200, "mcg/kg/min", 100000,
                             weight_g=50000)
    lines = _to_epoprostenol_weight(app, world)
    assert lines[1:3] == ["Patient weight", ">50 kg"], lines   # the previous program's
    app.menu.value = 5000                                # 5 kg: a tenth (range 2.5-150 kg)
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE WEIGHT", lines
    assert "5 kg is a tenth or less of the weight before" in " ".join(lines), lines
    assert (ev.ENTRY_TENFOLD_WARNED, mn.F_WEIGHT, 5000) in events(app)
    lines = press(app, world, SELECT)
    assert lines[1] == "Dose" and app.menu.weight_g == 5000, lines
    assert (ev.ENTRY_TENFOLD_CONFIRMED, mn.F_WEIGHT, 5000) in events(app)
    press(app, world, BACK)                              # back to the weight
    app.menu.value = 49000                               # no warning below 10x
    lines = press(app, world, SELECT)
    assert lines[1] == "Dose" and app.menu.weight_g == 49000, lines
    # upwards: from a previous 5 kg to 50 kg
    app2, world2, h2 = make_pump()
    app2.program_from_library("Inotropes", 703, None, 4000, "mcg/kg/min", 100000,
                              weight_g=5000)
    _to_epoprostenol_weight(app2, world2)
    app2.menu.value = 50000
    lines = press(app2, world2, SELECT)
    assert lines[0] == "! CHECK THE WEIGHT", lines
    assert "10x or more" in " ".join(lines), lines
    lines = press(app2, world2, BACK)                    # not confirmed: back, unchanged
    assert app2.menu.screen == mn.S_WEIGHT and lines[2] == ">50 kg", lines
    run_for(app2, world2, 16)                            # ... and reverted unconfirmed
    assert app2.menu.value == 5000, app2.menu.lines


def test_tenfold_dose_both_directions_and_no_warning_below_10x_SR_TH_6():
    app, world, h = make_pump()
    press(app, world, SELECT)
    press(app, world, SELECT)
    press(app, world, UP)
    press(app, world, SELECT)
    press(app, world, SELECT)                            # Vancomycin 500 mg/h
    app.menu.value = 50000                               # 50 mg/h: a tenth
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE DOSE", lines
    assert (ev.ENTRY_TENFOLD_WARNED, mn.F_DOSE, 50000) in events(app)
    press(app, world, BACK)
    app.menu.value = 51000                               # just above a tenth: no warning
    lines = press(app, world, SELECT)
    assert lines[1] == "Volume to infuse", lines
    # upwards, against a previous program of 40 mg/h
    app2, world2, h2 = make_pump()
    app2.program_from_library("Adult home", 101, 0, 40000, "mg/h", 100000)
    press(app2, world2, SELECT)
    press(app2, world2, SELECT)
    press(app2, world2, UP)
    press(app2, world2, SELECT)
    lines = press(app2, world2, SELECT)
    assert lines[2] == ">40 mg/h", lines
    app2.menu.value = 400000                             # 10x
    lines = press(app2, world2, SELECT)
    assert lines[0] == "! CHECK THE DOSE", lines
    assert "400 mg/h is 10x or more" in " ".join(lines), lines
    lines = press(app2, world2, SELECT)
    assert lines[1] == "Volume to infuse", lines
    assert (ev.ENTRY_TENFOLD_CONFIRMED, mn.F_DOSE, 400000) in events(app2)
    for line in lines:
        assert len(line) <= 21
