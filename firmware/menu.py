"""Programming on the pump's own buttons and display (SR-TH-3, SR-TH-4, SR-TH-6, SR-LIB-4).

Owns the nurse's screens: care area -> drug -> concentration -> weight (per-kg
doses) -> dose -> VTBI -> summary -> programmed -> RUN.  Keys: UP/DOWN move
or change a value, SELECT confirms a step, RUN_STOP starts once programmed,
SILENCE goes back (cancels on the first screen).  Every check and the
conversion are ``firmware.programming``'s, through the same application API
the simulator and the tests use (``PumpApp.program_from_library``), so a
program made here is checked exactly like any other.

* A dose outside the hard limits is refused on the dose screen with the reason;
  one outside the soft limits needs a second, explicit SELECT on a warning screen.
* SR-TH-6: a dose, weight or VTBI confirmed at 10x or more / a tenth or less of
  the value before (the previous program's, else the one the screen started
  from) needs a second, explicit SELECT on a "CHECK THE ..." screen; logged
  ENTRY_TENFOLD_WARNED, then ENTRY_TENFOLD_CONFIRMED.
* SR-TH-6: every value is confirmed with SELECT; an edited value (weight, dose,
  VTBI) not confirmed within 15 s reverts to the value the screen started from,
  and a warning screen left 15 s without its confirmation goes back to the
  value before the edit (ENTRY_EDIT_REVERTED).  The list screens (care area,
  drug, concentration) only move a cursor: nothing is taken until SELECT.  The
  menu closes after 2 min without a key.  Keys reach it debounced (one press
  per physical press: ``hal.devices.DebouncedButtons``), without auto-repeat.
* Values step by three significant digits (500 -> 501 mg/h, 0.375 -> 0.376
  mcg/kg/min), never finer than the dose one 0.1 mL/h rate step gives, weights
  by 0.1 kg, volumes by three significant digits and at least 0.1 mL.
* Screens are at most 7 lines of 21 characters (``ui`` adds the alarm line).
  They are made on key presses only: an open menu waiting for a key allocates
  nothing per cycle (``tick`` compares integers).

The application opens it with SELECT when no therapy is being delivered and
no alarm waits for an acknowledge (``PumpApp._on_keys``).  Imported on first
use, so it costs no heap on a pump that only runs a therapy.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from firmware import druglib as dl
from firmware import events
from firmware import programming as pg
from hal import KEY_DOWN, KEY_RUN_STOP, KEY_SELECT, KEY_SILENCE, KEY_UP  # the one key map


EDIT_REVERT_MS = const(15000)       # SR-TH-6
IDLE_CLOSE_MS = const(120000)
WIDTH = const(21)
MSG_LINES = const(4)
ERR_MENU = const(8)                 # PumpApp._error kind (1, 2, 4 are the app's)

# screens
S_CLOSED = const(0)
S_NOLIB = const(1)
S_CARE = const(2)
S_DRUG = const(3)
S_CONC = const(4)
S_WEIGHT = const(5)
S_DOSE = const(6)
S_CONFIRM = const(7)
S_VTBI = const(8)
S_SUMMARY = const(9)
S_READY = const(10)
S_ERROR = const(11)

# what a confirmation screen confirms
C_TENFOLD = const(1)
C_SOFT = const(2)

# edited fields (ENTRY_* event argument a)
F_DOSE = const(1)
F_WEIGHT = const(2)
F_VTBI = const(3)

HINT_LIST = "UP/DOWN  SELECT=OK"
HINT_BACK = "SILENCE=back"


def wrap(text, width=WIDTH, most=MSG_LINES):
    """Word-wrap text into at most ``most`` lines of ``width`` characters."""
    out = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                out.append(line)
                line = ""
            out.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line = line + " " + word
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    return out[:most]


def pow10_at_most(value):
    """The largest power of ten <= value (1 for value < 10)."""
    s = 1
    while s * 10 <= value:
        s *= 10
    return s


def step_up(value, min_step):
    """Step at ``value`` going up: three significant digits, at least min_step."""
    s = pow10_at_most(value // 100)
    return s if s > min_step else min_step


def step_down(value, min_step):
    """Step going down from ``value`` (from 100 to 99.9, not 99)."""
    s = pow10_at_most((value - 1) // 100) if value > 0 else 1
    return s if s > min_step else min_step


class Menu:
    """The programming screens; ``lines`` is what the display shows while ``active``."""

    def __init__(self):
        self.active = False
        self.screen = S_CLOSED
        self.lines = []
        self.last_key_ms = 0
        self.lib = None
        self.msg = None
        self.confirming = 0
        self.tenfold_field = F_DOSE
        self.tenfold_value = 0
        self.tenfold_ref = 0
        self.dose_ref = 0

    # ---- driven by the application ------------------------------------------------
    def on_keys(self, app, keys, now):
        """Handle a key press; returns the keys left for the application."""
        if not self.active and not keys & KEY_SELECT:
            return keys
        left = 0
        self.last_key_ms = now
        try:
            if not self.active:
                left = keys & KEY_RUN_STOP      # SELECT opens the menu, nothing else
                self._open(app, now, None)
            elif app.library is not self.lib:   # a load committed while the menu was open
                self._open(app, now, "The drug library changed: start again")
            elif keys & KEY_SILENCE:
                self._back(app)
            elif keys & KEY_SELECT:
                self._select(app)
            elif keys & KEY_UP:
                self._move(app, 1)
            elif keys & KEY_DOWN:
                self._move(app, -1)
            elif keys & KEY_RUN_STOP:
                self._run(app)
            if self.active:
                self._render(app)
        except pg.ProgramError as e:  # an entry the library cannot give (say why)
            self.msg = e.short
            self._render(app)
        except Exception as e:       # never let a menu fault reach the control cycle
            app._error(ERR_MENU, e)
            self.active = True
            self.screen = S_ERROR
            self.msg = "%s" % e
            self._render(app)
        return left

    def tick(self, app, now):
        """Every cycle while open: close when delivery starts, revert an unconfirmed edit
        after 15 s (SR-TH-6), close after 2 min without a key.  Allocates only when it
        changes the screen."""
        phase = app.core.phase
        if phase == sc.PHASE_RUNNING or phase == sc.PHASE_KVO:
            self.close()
            return
        idle = now - self.last_key_ms
        if idle >= IDLE_CLOSE_MS:
            self.close()
        elif idle >= EDIT_REVERT_MS:
            s = self.screen
            if self.value != self.start_value and (
                    s == S_DOSE or s == S_WEIGHT or s == S_VTBI):
                self._revert(app, s, self.start_value)
            elif s == S_CONFIRM:          # a warning not confirmed: the value before
                f = self.tenfold_field if self.confirming == C_TENFOLD else F_DOSE
                if f == F_WEIGHT:
                    self._revert(app, S_WEIGHT, self.start_value)
                elif f == F_VTBI:
                    self._revert(app, S_VTBI, self.start_value)
                else:
                    self._revert(app, S_DOSE, self.dose_ref)

    def _revert(self, app, screen, value):
        self.screen = screen
        self.value = self.start_value = value
        self.msg = "Unconfirmed change reverted"
        app.log.append(events.ENTRY_EDIT_REVERTED, F_DOSE if screen == S_DOSE else
                       F_WEIGHT if screen == S_WEIGHT else F_VTBI, value)
        self._render(app)

    def close(self):
        self.active = False
        self.screen = S_CLOSED
        self.lib = None
        self.plan = None
        self.msg = None

    # ---- state ----------------------------------------------------------------------
    def _open(self, app, now, message):
        self.active = True
        self.last_key_ms = now
        self.lib = lib = app.library
        self.plan = None
        self.value = self.start_value = 0
        self.msg = message
        if lib is None:
            self.screen = S_NOLIB
            self._render(app)
            return
        self.lib_id = lib.library_id
        self.lib_version = lib.version
        self.area = lib.care_area(0)
        self.screen = S_CARE
        self._render(app)

    def _set(self, screen, value=0):
        self.screen = screen
        self.value = self.start_value = value
        self.msg = None

    def _edit(self, screen, value, start):
        """Back on an edit screen with ``value`` still unconfirmed (reverts to ``start``)."""
        self.screen = screen
        self.value = value
        self.start_value = start
        self.msg = None

    def _drug(self, first):
        """Make the drug whose first concentration is entry ``first`` current."""
        lib = self.lib
        e = lib.entry(first)
        self.drug_id = e.drug_id
        self.drug_first, self.drug_count = lib.drug_range(self.area.index, e.drug_id)
        self.drug_name = pg._drug_name(lib, e.drug_id)
        self.conc = 0

    def _after_conc(self, app):
        self.entry = e = self.lib.entry(self.drug_first + self.conc)
        if e.dose_unit and e.dose_unit < len(dl.DOSE_UNITS) and dl.DOSE_UNITS[e.dose_unit][3]:
            prev = app.therapy
            w = prev.weight_g if prev is not None and prev.weight_g else 0
            self._set(S_WEIGHT, w)       # 0 = not entered: the nurse must choose one
        else:
            self.weight_g = None
            self._enter_dose(app)

    def _enter_dose(self, app):
        e = self.entry
        self.num, self.den = pg.rate_factor(e, self.weight_g)
        # never finer than the dose one 0.1 mL/h step gives
        self.min_step = pow10_at_most(pg.RATE_STEP_UL_PER_H * self.den // self.num)
        prev = app.therapy
        if prev is not None and prev.entry.index == e.index and prev.library_id == \
                self.lib_id and prev.library_version == self.lib_version:
            dose = prev.dose              # re-programming the same drug: start from it
        elif e.default is not None:
            dose = e.default
        elif e.soft_min is not None:
            dose = e.soft_min
        else:
            dose = e.hard_min or 0
        self.dose_ref = dose              # SR-TH-6: 10x / a tenth of it is warned
        self._set(S_DOSE, dose)

    def _conc_arg(self):
        return None if self.drug_id == dl.BASIC_DRUG_ID else self.conc

    def _check(self, vtbi_ul):
        return pg.plan(self.lib, self.area.index, self.drug_id, self._conc_arg(), self.dose,
                       self.entry.dose_unit, vtbi_ul, self.weight_g, 0, self.lib_id,
                       self.lib_version)

    # ---- keys -------------------------------------------------------------------------
    def _move(self, app, d):
        s = self.screen
        lib = self.lib
        if s == S_CARE:
            n = lib.care_area_count
            self.area = lib.care_area((self.area.index + d) % n)
        elif s == S_DRUG:
            a = self.area
            end = a.first_entry + a.entry_count
            if d > 0:
                nxt = self.drug_first + self.drug_count
                self._drug(nxt if nxt < end else a.first_entry)
            else:
                prev = self.drug_first - 1 if self.drug_first > a.first_entry else end - 1
                self._drug(lib.drug_range(a.index, lib.entry(prev).drug_id)[0])
        elif s == S_CONC:
            self.conc = (self.conc + d) % self.drug_count
        elif s == S_WEIGHT:
            lo = pg.WEIGHT_MIN_G
            hi = pg.WEIGHT_MAX_G
            v = self.value
            if not v:
                w_lo, w_hi = pg.weight_range(self.entry)
                v = w_lo if d > 0 else w_hi
            else:
                v = v + d * (step_up(v, 100) if d > 0 else step_down(v, 100))
            self.value = lo if v < lo else hi if v > hi else v
            self.msg = None
        elif s == S_DOSE:
            v = self.value
            v = v + step_up(v, self.min_step) if d > 0 else v - step_down(v, self.min_step)
            hi = self.entry.hard_max * 10
            self.value = 0 if v < 0 else hi if v > hi else v
            self.msg = None
        elif s == S_VTBI:
            e = self.entry
            lo = e.vtbi_min_ul if e.vtbi_min_ul is not None else sc.VTBI_MIN_UL
            hi = e.vtbi_max_ul if e.vtbi_max_ul is not None else sc.VTBI_MAX_UL
            v = self.value
            v = v + step_up(v, 100) if d > 0 else v - step_down(v, 100)
            self.value = lo if v < lo else hi if v > hi else v
            self.msg = None

    def _select(self, app):
        s = self.screen
        if s == S_NOLIB or s == S_ERROR:
            self.close()
        elif s == S_CARE:
            a = self.area
            if not a.entry_count:
                self.msg = "Nothing can be programmed in this care area"
                return
            self._drug(a.first_entry)
            self._set(S_DRUG)
        elif s == S_DRUG:
            if self.drug_count > 1:
                self._set(S_CONC)
            else:
                self._after_conc(app)
        elif s == S_CONC:
            self._after_conc(app)
        elif s == S_WEIGHT:
            if not self.value:
                self.msg = "Enter the patient's weight (UP/DOWN)"
                return
            try:
                pg.check_weight(self.entry, self.value, self.drug_name)
            except pg.ProgramError as e:
                self.msg = e.short
                return
            if self._tenfold(app, F_WEIGHT, self.value, self.start_value):
                return
            self.weight_g = self.value
            self._enter_dose(app)
        elif s == S_DOSE:
            self.dose = self.value
            try:
                self.plan = self._check(None)
            except pg.ProgramError as e:
                self.msg = e.short              # hard limits, rate outside the pump's
                return
            if self._tenfold(app, F_DOSE, self.dose, self.dose_ref):
                pass
            elif self.plan.soft:
                self._confirm(C_SOFT)
            else:
                self.confirm_soft = False
                self._enter_vtbi(app)
        elif s == S_CONFIRM:
            f = F_DOSE
            if self.confirming == C_TENFOLD:
                f = self.tenfold_field
                app.log.append(events.ENTRY_TENFOLD_CONFIRMED, f, self.tenfold_value)
            if f == F_WEIGHT:
                self.weight_g = self.tenfold_value
                self._enter_dose(app)
            elif f == F_VTBI:
                self._to_summary()
            elif self.confirming == C_TENFOLD and self.plan.soft:
                self._confirm(C_SOFT)
            else:
                self.confirm_soft = self.plan.soft != pg.SOFT_NONE
                self._enter_vtbi(app)
        elif s == S_VTBI:
            try:
                self.plan = self._check(self.value)
            except pg.ProgramError as e:
                self.msg = e.short
                return
            if not self._tenfold(app, F_VTBI, self.value, self.start_value):
                self._to_summary()
        elif s == S_SUMMARY:
            try:
                self.plan = app.program_from_library(
                    self.area.index, self.drug_id, self._conc_arg(), self.dose,
                    self.entry.dose_unit, self.vtbi_ul, self.weight_g, 0, self.confirm_soft,
                    self.lib_id, self.lib_version)
            except pg.ProgramError as e:          # back to the dose, saying why
                self._set(S_DOSE, self.dose)
                self.msg = e.short
                return
            self._set(S_READY)

    def _confirm(self, what):
        self.confirming = what
        self.screen = S_CONFIRM
        self.msg = None

    def _tenfold(self, app, field, value, ref):
        """SR-TH-6: 10x or more / a tenth or less of ``ref`` -> the warning screen, logged."""
        if ref <= 0 or (value < 10 * ref and value * 10 > ref):
            return False
        self.tenfold_field = field
        self.tenfold_value = value
        self.tenfold_ref = ref
        app.log.append(events.ENTRY_TENFOLD_WARNED, field, value)
        self._confirm(C_TENFOLD)
        return True

    def _to_summary(self):
        self.vtbi_ul = self.value
        self.screen = S_SUMMARY
        self.msg = None

    def _enter_vtbi(self, app):
        e = self.entry
        prev = app.therapy
        if prev is not None and prev.entry.index == e.index and prev.vtbi_ul:
            v = prev.vtbi_ul
        elif e.vtbi_max_ul is not None:
            v = e.vtbi_max_ul
        else:
            v = 100000                    # 100 mL: the nurse sets the bag's volume
        lo = e.vtbi_min_ul if e.vtbi_min_ul is not None else sc.VTBI_MIN_UL
        hi = e.vtbi_max_ul if e.vtbi_max_ul is not None else sc.VTBI_MAX_UL
        self._set(S_VTBI, lo if v < lo else hi if v > hi else v)

    def _back(self, app):
        s = self.screen
        if s == S_CARE or s == S_NOLIB or s == S_READY or s == S_ERROR:
            self.close()
        elif s == S_DRUG:
            self._set(S_CARE)
        elif s == S_CONC:
            self._set(S_DRUG)
        elif s == S_WEIGHT or (s == S_DOSE and self.weight_g is None):
            if self.drug_count > 1:
                self._set(S_CONC)
                self.conc = self.entry.index - self.drug_first
            else:
                self._set(S_DRUG)
        elif s == S_DOSE:
            self._set(S_WEIGHT, self.weight_g)
        elif s == S_CONFIRM:              # the value entered, still unconfirmed
            f = self.tenfold_field if self.confirming == C_TENFOLD else F_DOSE
            if f == F_WEIGHT:
                self._edit(S_WEIGHT, self.tenfold_value, self.start_value)
            elif f == F_VTBI:
                self._edit(S_VTBI, self.tenfold_value, self.start_value)
            else:
                self._edit(S_DOSE, self.dose, self.dose_ref)
        elif s == S_VTBI:
            self._set(S_DOSE, self.dose)
        elif s == S_SUMMARY:
            self._set(S_VTBI, self.vtbi_ul)

    def _run(self, app):
        if self.screen != S_READY:
            self.msg = "Finish programming (SELECT) or leave (SILENCE) first"
            return
        try:
            app.start()
        except sc.CoreRefused as e:
            self.msg = e.message
            return
        self.close()

    # ---- screens ------------------------------------------------------------------------
    def _render(self, app):
        """Make ``lines`` for the current screen: at most 7, with a message (a refusal,
        a hint) in place of the screen's lower lines."""
        s = self.screen
        out = []
        keep = 3                         # lines kept above a message
        hint = HINT_LIST
        if s == S_NOLIB or s == S_ERROR:
            if s == S_NOLIB:
                out.append("No drug library")
                out.extend(wrap("A technician must load one before a therapy can be "
                                "programmed.", WIDTH, 3))
            else:
                out.append("Cannot program")
            keep = 1
            hint = HINT_BACK
        elif s == S_CARE:
            out.append("Lib %d v%d" % (self.lib_id, self.lib_version))
            out.append("Care area %d/%d" % (self.area.index + 1, self.lib.care_area_count))
            out.append((">" + self.area.name)[:WIDTH])
        elif s == S_DRUG:
            out.append(self.area.name[:WIDTH])
            out.append("Drug")
            out.append((">" + self.drug_name)[:WIDTH])
            if self.drug_count > 1:
                out.append("  %d concentrations" % self.drug_count)
        elif s == S_CONC:
            out.append(self.drug_name[:WIDTH])
            out.append("Concentration %d/%d" % (self.conc + 1, self.drug_count))
            e = self.lib.entry(self.drug_first + self.conc)
            out.append((">" + (pg.conc_text(e) or "no concentration"))[:WIDTH])
            out.append(("  dose in " + dl.DOSE_UNITS[e.dose_unit][0])[:WIDTH])
        elif s == S_WEIGHT:
            out.append(self.drug_name[:WIDTH])
            out.append("Patient weight")
            out.append(">" + (pg.kg_text(self.value) if self.value else "--- kg"))
            lo, hi = pg.weight_range(self.entry)
            out.append(("  %s-%s" % (dl.format_scaled(lo, 3), pg.kg_text(hi)))[:WIDTH])
        elif s == S_DOSE:
            out.append(self.drug_name[:WIDTH])
            out.append("Dose")
            out.append((">" + pg.dose_text(self.value, self.entry.dose_unit))[:WIDTH])
            rate = pg.round_rate(self.value * self.num, self.den)
            out.append(("  = " + pg.rate_text(rate))[:WIDTH])
        elif s == S_CONFIRM:
            p = self.plan
            if self.confirming == C_TENFOLD:
                f = self.tenfold_field
                v = self.tenfold_value
                if f == F_WEIGHT:
                    what, text = "weight", pg.kg_text(v)
                elif f == F_VTBI:
                    what, text = "volume", pg.ml_text(v)
                else:
                    what, text = "dose", pg.dose_text(v, p.dose_unit)
                out.append("! CHECK THE " + what.upper())
                out.extend(wrap("%s is %s the %s before: confirm?" % (
                    text, "10x or more" if v >= 10 * self.tenfold_ref else
                    "a tenth or less of", what), WIDTH, 4))
                hint = "SILENCE=change " + what
            else:
                out.append("! SOFT LIMIT")
                out.extend(wrap(pg.soft_message(p), WIDTH, 4))
                hint = "SILENCE=change dose"
            out.append("SELECT=confirm")
        elif s == S_VTBI:
            out.append(self.drug_name[:WIDTH])
            out.append("Volume to infuse")
            out.append((">" + pg.ml_text(self.value))[:WIDTH])
        elif s == S_SUMMARY:
            p = self.plan
            out.append(p.drug_name[:WIDTH])
            c = pg.conc_text(p.entry)
            if c:
                out.append(c[:WIDTH])
            if p.weight_g:
                out.append(pg.kg_text(p.weight_g))
            out.append(("Rate " + pg.rate_text(p.rate_ul_per_h))[:WIDTH])
            if p.dose_line:
                out.append(p.dose_line)
            out.append(("VTBI " + pg.ml_text(p.vtbi_ul))[:WIDTH])
            hint = "SELECT=program"
        elif s == S_READY:
            p = app.therapy
            out.append("Programmed")
            if p is not None:
                out.append(p.name_line)
                out.append(("Rate " + pg.rate_text(p.rate_ul_per_h))[:WIDTH])
            out.append("RUN=start")
            keep = len(out) - 1
            hint = "SILENCE=home"
        if self.msg:
            out = out[:keep]
            out.extend(wrap(self.msg, WIDTH, 6 - keep))
        elif s != S_SUMMARY and s != S_READY and s != S_CONFIRM and s != S_NOLIB:
            out.append(HINT_BACK)
        out.append(hint)
        self.lines = out
