"""Programming on the pump's own buttons and display (SR-TH-3, SR-TH-4, SR-TH-6, SR-LIB-4):
whole programmings pressed on the sim buttons from the test library to a running therapy,
a hard-limit refusal shown on the dose screen, a soft limit and a tenfold change each
needing a second SELECT, the 15 s revert of an unconfirmed edit, back/cancel, no library,
a library swapped under the menu, and no allocation while the menu waits for a key.

Portable: CPython and MicroPython (tests/mpy/run.py).
"""
import gc

import safety_core as sc
from firmware import alarms as al
from firmware import events as ev
from firmware import ui
from firmware import menu as mn
from tests.mpy.library_pump import (BACK, DOWN, RUN, SELECT, UP, events, make_pump,
                                    open_library, press, run_for)


def _screen_ok(lines):
    assert len(lines) <= 8, lines
    for line in lines:
        assert len(line) <= 21, (line, lines)


def _to_vancomycin_dose(app, world):
    assert press(app, world, SELECT)[2] == ">Adult home"
    assert press(app, world, SELECT)[2] == ">Basic infusion"
    lines = press(app, world, UP)
    assert lines[2:4] == [">Vancomycin", "  2 concentrations"], lines
    lines = press(app, world, SELECT)
    assert lines[1:4] == ["Concentration 1/2", ">5 mg/mL", "  dose in mg/h"], lines
    lines = press(app, world, SELECT)
    assert lines[:4] == ["Vancomycin", "Dose", ">500 mg/h", "  = 100 mL/h"], lines
    return lines


def test_whole_programming_on_buttons_to_running_therapy_with_soft_override_SR_LIB_4():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    lines = press(app, world, UP, 10)                      # 1 mg/h steps near 500 mg/h
    assert lines[2:4] == [">510 mg/h", "  = 102 mL/h"], lines
    lines = press(app, world, SELECT)                      # above soft max 500: confirm
    assert lines[0] == "! SOFT LIMIT", lines
    assert "soft max 500 mg/h" in " ".join(lines), lines
    _screen_ok(lines)
    lines = press(app, world, SELECT)                      # explicit second confirmation
    assert lines[1:3] == ["Volume to infuse", ">500 mL"], lines
    lines = press(app, world, SELECT)                      # summary with the converted rate
    assert lines == ["Vancomycin", "5 mg/mL", "Rate 102 mL/h", "510 mg/h", "VTBI 500 mL",
                     "SELECT=program"], lines
    assert app.program is None                             # nothing loaded before SELECT
    lines = press(app, world, SELECT)
    assert lines[0] == "Programmed" and "RUN=start" in lines, lines
    assert app.program[0] == 102000 and app.core.phase == sc.PHASE_READY
    press(app, world, RUN)
    assert app.core.phase == sc.PHASE_RUNNING and not app.menu.active
    run_for(app, world, 10)
    lines = h.display.lines
    assert lines[:3] == ["RUNNING Lib 42 v3", "Vancomycin", "510 mg/h"], lines
    assert app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE)
    log = events(app)
    assert (ev.SOFT_LIMIT_OVERRIDE, 101 | (2 << 16) | (2 << 24), 510000) in log
    assert (ev.THERAPY_CONTEXT, 42, (3 << 16) | 101) in log
    _screen_ok(lines)


def test_hard_limit_refusal_shown_on_dose_screen_SR_LIB_4():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    press(app, world, UP, 101)
    lines = press(app, world, SELECT)
    assert lines[:3] == ["Vancomycin", "Dose", ">601 mg/h"], lines
    assert "Above hard max 600" in " ".join(lines) and "not allowed" in " ".join(lines), lines
    _screen_ok(lines)
    assert app.menu.screen == mn.S_DOSE and app.program is None
    lines = press(app, world, DOWN)                        # editing clears the message
    assert lines[2] == ">600 mg/h" and "not allowed" not in " ".join(lines), lines


def test_weight_then_dose_programming_per_kg_SR_TH_3():
    app, world, h = make_pump()
    press(app, world, SELECT)
    assert press(app, world, UP)[2] == ">Inotropes"
    assert press(app, world, SELECT)[2] == ">Milrinone"
    lines = press(app, world, SELECT)                      # one concentration: no screen
    assert lines[1:4] == ["Patient weight", ">--- kg", "  30-200 kg"], lines
    lines = press(app, world, SELECT)                      # a weight must be entered
    assert "Enter the patient's weight" in " ".join(lines), lines
    assert press(app, world, UP)[2] == ">30 kg"           # from "---": the range's minimum
    assert press(app, world, DOWN)[2] == ">29.9 kg"
    lines = press(app, world, SELECT)
    assert "Below min 30 kg" in " ".join(lines), lines
    press(app, world, UP)
    lines = press(app, world, SELECT)
    # 0.375 mcg/kg/min x 30 kg x 60 / 200 mcg/mL = 3.375 mL/h -> 3.4 mL/h
    assert lines[:4] == ["Milrinone", "Dose", ">0.375 mcg/kg/min", "  = 3.4 mL/h"], lines
    lines = press(app, world, SELECT)
    assert lines[2] == ">100 mL", lines
    lines = press(app, world, SELECT)
    assert lines == ["Milrinone", "200 mcg/mL", "30 kg", "Rate 3.4 mL/h",
                     "~0.37778 mcg/kg/min", "VTBI 100 mL", "SELECT=program"], lines
    press(app, world, SELECT)
    press(app, world, RUN)
    assert app.core.phase == sc.PHASE_RUNNING
    assert app.therapy.weight_g == 30000 and app.status()["drug_id"] == 701
    assert not app.alarms.active


def test_tenfold_change_needs_a_second_confirmation_SR_TH_6():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    app.menu.value = 50000                                 # 50 mg/h: a tenth of 500
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE DOSE", lines
    assert "50 mg/h is a tenth or less" in " ".join(lines), lines
    lines = press(app, world, BACK)                        # back to the dose, unchanged
    assert lines[2] == ">50 mg/h", lines
    lines = press(app, world, SELECT)
    assert lines[0] == "! CHECK THE DOSE", lines
    lines = press(app, world, SELECT)
    assert lines[1] == "Volume to infuse", lines


def test_unconfirmed_edit_reverts_after_15_s_SR_TH_6():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    press(app, world, UP, 3)
    run_for(app, world, 14)
    assert app.menu.value == 503000
    run_for(app, world, 2)
    assert app.menu.value == 500000
    assert app.menu.lines[2] == ">500 mg/h"
    assert "reverted" in " ".join(app.menu.lines), app.menu.lines


def test_menu_closes_after_two_minutes_without_a_key():
    app, world, h = make_pump()
    press(app, world, SELECT)
    run_for(app, world, 121)
    assert not app.menu.active
    assert ui.render(app)[0] == "IDLE Lib 42 v3"


def test_back_walks_the_screens_and_cancels_from_the_first():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    assert press(app, world, BACK)[1] == "Concentration 1/2"
    assert press(app, world, BACK)[1] == "Drug"
    assert press(app, world, BACK)[1] == "Care area 1/3"
    press(app, world, BACK)
    assert not app.menu.active and app.program is None
    assert h.display.lines[0] == "IDLE Lib 42 v3"


def test_no_library_screen_says_so_and_nothing_can_be_programmed_SR_TH_4():
    app, world, h = make_pump(with_library=False)
    lines = press(app, world, SELECT)
    assert lines[0] == "No drug library", lines
    _screen_ok(lines)
    press(app, world, SELECT)
    assert not app.menu.active and app.program is None


def test_library_swapped_under_the_menu_starts_again_SR_LIB_4():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    app.set_library(open_library())                        # a committed load
    lines = press(app, world, UP)
    assert lines[1] == "Care area 1/3", lines
    assert "changed" in " ".join(lines), lines


def test_run_in_menu_does_not_resume_the_old_program_and_select_acks_alarms_first():
    app, world, h = make_pump()
    app.program_from_library("Adult home", 101, 0, 510000, "mg/h", 250000, confirm_soft=True)
    assert app.alarms.unacknowledged()
    press(app, world, SELECT)                              # acknowledges the LOW alarm
    assert app.menu is None or not app.menu.active
    assert app.alarms.is_active(al.SOFT_LIMIT_OVERRIDE)    # its cause is still there
    press(app, world, SELECT)                              # now opens the menu
    assert app.menu.active
    lines = press(app, world, RUN)
    assert app.core.phase == sc.PHASE_READY, "RUN in the menu must not start the old program"
    assert "Finish programming" in " ".join(lines), lines
    press(app, world, BACK)
    press(app, world, RUN)                                 # at home: RUN starts as before
    assert app.core.phase == sc.PHASE_RUNNING


def test_open_menu_allocates_nothing_while_waiting_for_a_key_PT_8():
    app, world, h = make_pump()
    _to_vancomycin_dose(app, world)
    menu = app.menu
    now = app.now_ms()
    ui.render(app)
    if not hasattr(gc, "mem_alloc"):
        return                                             # CPython: nothing to measure
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    menu.tick(app, now)
    ui.render(app)
    used = gc.mem_alloc() - a0
    gc.enable()
    assert used == 0, used


def test_step_rules_three_significant_digits_and_grid_floor():
    assert (mn.step_up(500000, 100), mn.step_down(500000, 100)) == (1000, 1000)
    assert (mn.step_up(100000, 100), mn.step_down(100000, 100)) == (1000, 100)
    assert mn.step_up(0, 100) == 100
    assert mn.wrap("dose 650 mg/h above hard max 600 mg/h for Vancomycin", 21, 4) == \
        ["dose 650 mg/h above", "hard max 600 mg/h for", "Vancomycin"]


def test_home_screen_with_a_library_therapy_allocates_nothing_when_steady_PT_8():
    app, world, h = make_pump()
    app.program_from_library("Inotropes", 701, None, 37500, "mcg/kg/min", 100000,
                             weight_g=70000)
    app.start()
    run_for(app, world, 3)
    lines = ui.render(app)
    assert lines[:3] == ["RUNNING Lib 42 v3", "Milrinone", "~0.37619 mcg/kg/min"], lines
    if not hasattr(gc, "mem_alloc"):
        return
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    ui.render(app)                  # same values: every line reused, the list refilled
    used = gc.mem_alloc() - a0
    gc.enable()
    assert used == 0, used


def test_patient_select_cannot_open_the_programming_menu_SR_TH_4():
    """SPEC 1: the patient never sees a menu that can change therapy.  SELECT alone does
    not open it; the clinician chord (UP + DOWN together) opens access for one minute."""
    app, world, h = make_pump()
    world.advance(app.cycle_ms * 61)             # the access the helper opened has lapsed
    app.cycle()
    press(app, world, SELECT)
    assert app.menu is None or not app.menu.active
    press(app, world, UP | DOWN)                 # clinician access
    assert press(app, world, SELECT)[2] == ">Adult home"
    assert app.menu.active
