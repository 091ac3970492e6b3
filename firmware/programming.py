"""Programming a therapy from the drug library (SR-TH-3, SR-TH-4, SR-LIB-4).

Owns the step from "care area, drug, concentration, dose in the drug's unit"
to the continuous program the safety core runs: the library look-ups, the
exact dose -> rate conversion, the library's limit checks and the refusal
reasons a nurse reads.  ``PumpApp.program_from_library`` (the API the menu,
the simulator and the tests use) calls ``program`` here; ``plan`` does the
checks without loading anything (the menu's dose and VTBI steps).

Numbers.  Doses are the library's scaled integers (value x 10**decimals of
the dose unit, ``druglib.DOSE_UNITS``), weights in g, volumes in uL, rates in
uL/h.  No float is used anywhere: the rate is the exact rational

    rate_ul_per_h = dose * num / den            (``rate_factor``)

and every comparison is made on integers (cross-multiplied where a side is a
fraction).

Rounding rule (stated once, used everywhere).  The pump runs on a 0.1 mL/h
(100 uL/h) grid (SR-TH-2):
* the programmed rate is the grid rate nearest the exact rate, a tie (exactly
  50 uL/h above a grid rate) going DOWN;
* the library's hard limits become rate limits rounded INWARD: hard min ->
  the next grid rate at or above it (ceil), hard max -> the grid rate at or
  below it (floor).  A dose inside the hard range whose nearest grid rate
  falls outside these rate limits is moved to the limit (at most 0.1 mL/h,
  inward), so the dose actually delivered never crosses a hard limit, and the
  safety core, which receives the rate limits with the program, refuses any
  rate outside them even if this module is wrong (SR-CORE-1);
* the dose actually delivered at the programmed rate (rate * den / num) is
  checked again against the hard and the soft limits, and is shown rounded to
  the unit's stored decimals (nearest, ties down) with a leading "~" when
  that display is not exact.
A rate below 0.1 mL/h or above 500 mL/h after rounding is refused, never
clamped: the pump never delivers a dose other than the one confirmed except
for the grid rounding above.

No library loaded: every program from this API is refused (NO_LIBRARY),
basic infusion included.  SR-TH-4 says every program is checked against the
library before it can start, and the application cannot tell "never had one"
from "lost it" (a damaged slot), so it never falls back to the device limits
alone.  ``PumpApp.program_continuous`` stays the unchecked low-level call for
tests and scenarios; no button path reaches it without the library.

Portable (MicroPython and CPython); imported on first use so that it costs no
heap on a pump that is only running a therapy.
"""
import safety_core as sc
from firmware import druglib as dl

RATE_STEP_UL_PER_H = 100            # SR-TH-2: 0.1 mL/h grid
WEIGHT_MIN_G = 100                  # SR-LIB-1: weights 0.1..500 kg when the entry has none
WEIGHT_MAX_G = 500000
DEFAULT_OCCLUSION_MMHG = 300        # as firmware.app when the entry sets none
DEFAULT_BUBBLE_UL = 100

# refusal reasons (stable: logged as events.LIBRARY_CHECK_REFUSED a)
NO_LIBRARY = 1
LIBRARY_CHANGED = 2
CARE_AREA_UNKNOWN = 3
DRUG_NOT_IN_LIBRARY = 4
DRUG_NOT_IN_CARE_AREA = 5           # care area mismatch
CONC_NOT_IN_LIBRARY = 6
CONC_REQUIRED = 7
DOSE_UNIT_MISMATCH = 8
WEIGHT_REQUIRED = 9
WEIGHT_OUT_OF_RANGE = 10
BELOW_HARD_MIN = 11
ABOVE_HARD_MAX = 12
SOFT_LIMIT_NEEDS_CONFIRMATION = 13
BASIC_NOT_ALLOWED = 14
RATE_BELOW_PUMP_MIN = 15
RATE_ABOVE_PUMP_MAX = 16
HARD_RANGE_UNREACHABLE = 17
VTBI_OUT_OF_RANGE = 18
DOSE_INVALID = 19
LIBRARY_UNREADABLE = 20
ENTRY_UNUSABLE = 21
PUMP_REFUSED = 22                   # the safety core refused (device limits, busy)

REASON_NAMES = ("", "NO_LIBRARY", "LIBRARY_CHANGED", "CARE_AREA_UNKNOWN",
                "DRUG_NOT_IN_LIBRARY", "DRUG_NOT_IN_CARE_AREA", "CONC_NOT_IN_LIBRARY",
                "CONC_REQUIRED", "DOSE_UNIT_MISMATCH", "WEIGHT_REQUIRED",
                "WEIGHT_OUT_OF_RANGE", "BELOW_HARD_MIN", "ABOVE_HARD_MAX",
                "SOFT_LIMIT_NEEDS_CONFIRMATION", "BASIC_NOT_ALLOWED", "RATE_BELOW_PUMP_MIN",
                "RATE_ABOVE_PUMP_MAX", "HARD_RANGE_UNREACHABLE", "VTBI_OUT_OF_RANGE",
                "DOSE_INVALID", "LIBRARY_UNREADABLE", "ENTRY_UNUSABLE", "PUMP_REFUSED")

# which soft limit a confirmed dose crosses (events.SOFT_LIMIT_OVERRIDE a, bits 24..31)
SOFT_NONE = 0
SOFT_BELOW_MIN = 1
SOFT_ABOVE_MAX = 2


class ProgramError(Exception):
    """A program the library refuses: ``reason`` (a code above) and ``message``, in words
    a nurse understands, naming the value, the limit and the unit; ``short`` is the
    same for the pump's screen (the value is shown above it there)."""

    def __init__(self, reason, message, short=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.short = short or message

    def reason_name(self):
        r = self.reason
        return REASON_NAMES[r] if 0 < r < len(REASON_NAMES) else "REASON_%d" % r


# ---- exact arithmetic ------------------------------------------------------------------

def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def round_rate(num, den):
    """Exact rate num/den uL/h -> the nearest 100 uL/h grid rate, a tie going down."""
    step = den * RATE_STEP_UL_PER_H
    q, r = divmod(num, step)
    if 2 * r > step:
        q += 1
    return q * RATE_STEP_UL_PER_H


def ceil_rate(num, den):
    """The smallest grid rate >= num/den uL/h."""
    step = den * RATE_STEP_UL_PER_H
    return -((-num) // step) * RATE_STEP_UL_PER_H


def floor_rate(num, den):
    """The largest grid rate <= num/den uL/h."""
    return num // (den * RATE_STEP_UL_PER_H) * RATE_STEP_UL_PER_H


def rate_factor(entry, weight_g=None):
    """(num, den), lowest terms: rate uL/h = dose * num / den for a dose scaled as the
    library stores it (value x 10**decimals of the entry's dose unit).

        mL doses:     num/den = 1000 [uL/mL] x (3600 / s per time unit) [x weight kg]
                                / 10**decimals
        amount doses: num/den = amount factor x 1000 x conc volume uL x (3600 / s)
                                [x weight kg] / (10**decimals x conc amount
                                (thousandths) x conc factor)
    where the factors take mg and g to mcg (druglib.AMOUNT_UNITS, CONC_UNITS).
    Raises ProgramError(ENTRY_UNUSABLE) when the concentration cannot give the dose.
    """
    u = entry.dose_unit
    if not 0 < u < len(dl.DOSE_UNITS):
        raise ProgramError(ENTRY_UNUSABLE, "library entry has unknown dose unit code %d" % u)
    text, decimals, amount, per_kg, seconds = dl.DOSE_UNITS[u]
    num = 3600 // seconds
    den = 10 ** decimals
    if per_kg:
        if not weight_g or weight_g <= 0:
            raise ProgramError(WEIGHT_REQUIRED, "%s needs the patient's weight" % text)
        num *= weight_g
        den *= 1000
    if amount == "mL":
        num *= 1000
    else:
        quantity, afactor = dl.AMOUNT_UNITS[amount]
        c = entry.conc_unit
        if not 0 < c < len(dl.CONC_UNITS) or not entry.conc_amount or not entry.conc_volume_ul:
            raise ProgramError(ENTRY_UNUSABLE, "library entry has no concentration for a %s "
                               "dose" % text)
        ctext, cquantity, cfactor = dl.CONC_UNITS[c]
        if cquantity != quantity:
            raise ProgramError(DOSE_UNIT_MISMATCH, "a %s dose cannot be given from a %s "
                               "concentration" % (text, ctext))
        num *= afactor * 1000 * entry.conc_volume_ul
        den *= entry.conc_amount * cfactor
    g = _gcd(num, den)
    return num // g, den // g


def delivered_dose(rate_ul_per_h, num, den):
    """(scaled dose rounded to the unit's decimals, nearest and ties down; exact?) of
    the dose a rate delivers: rate * den / num."""
    q, r = divmod(rate_ul_per_h * den, num)
    if 2 * r > num:
        q += 1
    return q, r == 0


# ---- text ------------------------------------------------------------------------------

def dose_text(value, unit_code):
    """'500 mg/h': a scaled dose with its unit (never a bare number, SR-TH-3)."""
    u = dl.DOSE_UNITS[unit_code]
    return dl.format_scaled(value, u[1]) + " " + u[0]


def ml_text(value_ul):
    return dl.format_scaled(value_ul, 3) + " mL"


def rate_text(value_ul_per_h):
    return dl.format_scaled(value_ul_per_h, 3) + " mL/h"


def kg_text(value_g):
    return dl.format_scaled(value_g, 3) + " kg"


def conc_text(entry):
    """'5 mg/mL', '1000 mg/250 mL'; '' when the entry has no concentration."""
    c = entry.conc_unit
    if not 0 < c < len(dl.CONC_UNITS):
        return ""
    vol = entry.conc_volume_ul
    per = "mL" if vol == 1000 else ml_text(vol)
    return dl.format_scaled(entry.conc_amount, 3) + " " + dl.CONC_UNITS[c][0] + "/" + per


def parse_scaled(text, decimals):
    """'0.375' -> 37500 for 5 decimals; exact or ValueError (never rounds, no float)."""
    text = text.strip()
    dot = text.find(".")
    whole = text if dot < 0 else text[:dot]
    frac = "" if dot < 0 else text[dot + 1:]
    if not (whole + frac).isdigit() or len(frac) > decimals:
        raise ValueError("%r is not a number with at most %d decimals" % (text, decimals))
    return int(whole or "0") * 10 ** decimals + int((frac + "0" * decimals)[:decimals] or "0")


def unit_code(dose_unit):
    """A dose unit given as text ('mg/h') or code -> code; 0 when unknown."""
    if isinstance(dose_unit, str):
        return dl.dose_unit_code(dose_unit)
    if isinstance(dose_unit, int) and 0 < dose_unit < len(dl.DOSE_UNITS):
        return dose_unit
    return 0


# ---- the plan ----------------------------------------------------------------------------

class Plan:
    """A checked program: what the core receives and what the nurse confirmed.

    Fields: library_id, library_version, care_area (index), care_area_name, entry
    (druglib.Entry), drug_id (0 = basic infusion), drug_name, dose (scaled, as entered),
    dose_unit (code), weight_g, num/den (rate = dose * num / den), rate_ul_per_h (on the
    grid), hard_min_rate_ul_per_h / hard_max_rate_ul_per_h (0 = none), delivered (dose
    the rate delivers, scaled and rounded), delivered_exact, vtbi_ul, kvo_ul_per_h,
    occlusion_limit_mmhg, bubble_limit_ul, soft (SOFT_*), soft_limit (scaled),
    name_line / dose_line (display text; dose_line '' for mL/h doses).
    """


def _refuse(reason, message, short=None):
    raise ProgramError(reason, message, short)


def _care_area(lib, care_area):
    if isinstance(care_area, str):
        index = lib.care_area_index(care_area)
        if index < 0:
            _refuse(CARE_AREA_UNKNOWN, "care area '%s' is not in library %d v%d"
                    % (care_area, lib.library_id, lib.version))
        return lib.care_area(index)
    if not isinstance(care_area, int) or not 0 <= care_area < lib.care_area_count:
        _refuse(CARE_AREA_UNKNOWN, "care area %r is not in library %d v%d"
                % (care_area, lib.library_id, lib.version))
    return lib.care_area(care_area)


def _drug_name(lib, drug_id):
    return dl.BASIC_NAME if drug_id == dl.BASIC_DRUG_ID else (
        lib.drug_name(drug_id) or "drug %d" % drug_id)


def _not_in_area(lib, area, drug_id):
    name = lib.drug_name(drug_id)
    if name is None:
        _refuse(DRUG_NOT_IN_LIBRARY, "drug %d is not in drug library %d v%d"
                % (drug_id, lib.library_id, lib.version))
    where = []
    for i in range(lib.care_area_count):
        if lib.drug_range(i, drug_id)[1]:
            where.append(lib.care_area(i).name)
    _refuse(DRUG_NOT_IN_CARE_AREA, "%s is not in the library for care area %s (listed in: %s)"
            % (name, area.name, ", ".join(where)))


def _same_conc(entry, key):
    """True when entry's concentration equals key = (unit, amount, volume) exactly or as
    the same strength (5 mg/1 mL = 500 mg/100 mL = 0.5 g/100 mL)."""
    unit, amount, volume = key
    if (entry.conc_unit, entry.conc_amount, entry.conc_volume_ul) == (unit, amount, volume):
        return True
    if not (0 < unit < len(dl.CONC_UNITS) and 0 < entry.conc_unit < len(dl.CONC_UNITS)):
        return False
    if not volume or not entry.conc_volume_ul:
        return False
    mine = dl.CONC_UNITS[entry.conc_unit]
    theirs = dl.CONC_UNITS[unit]
    return mine[1] == theirs[1] and (entry.conc_amount * mine[2] * volume
                                      == amount * theirs[2] * entry.conc_volume_ul)


def _conc_list(lib, first, count):
    return ", ".join([conc_text(lib.entry(i)) or "no concentration"
                      for i in range(first, first + count)])


def _entry(lib, area, drug_id, conc):
    """The entry for drug x concentration in a care area, or a refusal saying why."""
    if drug_id == dl.BASIC_DRUG_ID:
        if not area.basic_allowed:
            _refuse(BASIC_NOT_ALLOWED, "basic infusion (no drug) is not allowed in care area %s"
                    % area.name)
        e = lib.basic(area.index)
        if e is None:
            _refuse(BASIC_NOT_ALLOWED, "care area %s has no basic infusion limits" % area.name)
        return e
    if not isinstance(drug_id, int) or not 0 < drug_id <= 0xFFFF:
        _refuse(DRUG_NOT_IN_LIBRARY, "drug %r is not in drug library %d v%d"
                % (drug_id, lib.library_id, lib.version))
    first, count = lib.drug_range(area.index, drug_id)
    if not count:
        _not_in_area(lib, area, drug_id)
    if conc is None:
        if count == 1:
            return lib.entry(first)
        _refuse(CONC_REQUIRED, "%s has %d concentrations in %s: choose one (%s)"
                % (_drug_name(lib, drug_id), count, area.name, _conc_list(lib, first, count)))
    if isinstance(conc, int):
        if 0 <= conc < count:
            return lib.entry(first + conc)
        _refuse(CONC_NOT_IN_LIBRARY, "%s has no concentration number %d in %s (it has %d: %s)"
                % (_drug_name(lib, drug_id), conc + 1, area.name, count,
                   _conc_list(lib, first, count)))
    try:
        key = (int(conc[0]), int(conc[1]), int(conc[2]))
    except (TypeError, ValueError, IndexError):
        key = None
    if key is not None:
        for i in range(first, first + count):
            e = lib.entry(i)
            if _same_conc(e, key):
                return e
    asked = "?"
    if key is not None and 0 < key[0] < len(dl.CONC_UNITS) and key[2]:
        asked = (dl.format_scaled(key[1], 3) + " " + dl.CONC_UNITS[key[0]][0] + "/"
                 + ml_text(key[2]))
    _refuse(CONC_NOT_IN_LIBRARY, "%s %s is not a concentration in the library for %s "
            "(it has %s)" % (_drug_name(lib, drug_id), asked, area.name,
                             _conc_list(lib, first, count)))


def weight_range(e):
    """(min g, max g) of an entry: its own range, else the library's 0.1-500 kg."""
    return (e.weight_min_g if e.weight_min_g is not None else WEIGHT_MIN_G,
            e.weight_max_g if e.weight_max_g is not None else WEIGHT_MAX_G)


def check_weight(e, weight_g, name, where=""):
    """Refuse a missing weight or one outside the entry's range (per-kg doses)."""
    if weight_g is None or not isinstance(weight_g, int) or weight_g <= 0:
        _refuse(WEIGHT_REQUIRED, "%s is dosed in %s: enter the patient's weight"
                % (name, dl.DOSE_UNITS[e.dose_unit][0]))
    w_min, w_max = weight_range(e)
    _refuse_outside(WEIGHT_OUT_OF_RANGE, "weight", weight_g, w_min, w_max, kg_text, name, where)


def _refuse_outside(reason, label, value, lo, hi, text, name, where):
    """Refuse ``value`` outside lo..hi, naming the value and the limit with their units."""
    if value < lo:
        _refuse(reason, "%s %s below min %s for %s%s" % (label, text(value), text(lo), name,
                                                        where),
                "Below min %s for this drug" % text(lo))
    if value > hi:
        _refuse(reason, "%s %s above max %s for %s%s" % (label, text(value), text(hi), name,
                                                        where),
                "Above max %s for this drug" % text(hi))


def _dose_refusal(reason, dose, limit, unit, name, where):
    what = "below hard min" if reason == BELOW_HARD_MIN else "above hard max"
    _refuse(reason, "dose %s %s %s for %s: not allowed%s" % (
        dose_text(dose, unit), what, dose_text(limit, unit), name, where),
        "%s %s: not allowed" % (what[0].upper() + what[1:], dose_text(limit, unit)))


def plan(lib, care_area, drug_id, conc, dose, dose_unit, vtbi_ul=None, weight_g=None,
         kvo_ul_per_h=0, library_id=None, library_version=None):
    """Check a program against the library and convert it; returns a Plan or raises
    ProgramError.  Soft limits are only noted (``Plan.soft``): ``program`` asks for the
    confirmation.  ``vtbi_ul`` None skips the VTBI checks (the menu's dose step).
    ``conc``: None (the drug's only concentration), an index into the drug's
    concentrations in the care area, or (conc unit code, amount in thousandths, volume
    uL), an equivalent strength matching too.  ``library_id``/``library_version``: the
    library the caller chose from; a different active library is refused."""
    if lib is None:
        _refuse(NO_LIBRARY, "no drug library loaded: a technician must load one before "
                "a therapy can be programmed")
    if library_id is not None and (library_id != lib.library_id
                                   or (library_version is not None
                                       and library_version != lib.version)):
        _refuse(LIBRARY_CHANGED, "the drug library changed (now %d v%d): program again"
                % (lib.library_id, lib.version))
    try:
        return _plan(lib, care_area, drug_id, conc, dose, dose_unit, vtbi_ul, weight_g,
                     kvo_ul_per_h)
    except dl.LibraryError as e:
        raise ProgramError(LIBRARY_UNREADABLE, "drug library unreadable: %s" % e)


def _plan(lib, care_area, drug_id, conc, dose, dose_unit, vtbi_ul, weight_g, kvo_ul_per_h):
    area = _care_area(lib, care_area)
    e = _entry(lib, area, drug_id, conc)
    name = _drug_name(lib, drug_id)
    where = " in " + area.name
    u = e.dose_unit
    if not 0 < u < len(dl.DOSE_UNITS):
        _refuse(ENTRY_UNUSABLE, "library entry for %s has unknown dose unit code %d" % (name, u))
    unit = dl.DOSE_UNITS[u]
    asked = unit_code(dose_unit)
    if asked != u:
        c = conc_text(e)
        _refuse(DOSE_UNIT_MISMATCH, "dose unit %s does not match: %s is dosed in %s%s"
                % (dose_unit if asked == 0 else dl.DOSE_UNITS[asked][0],
                   name + " " + c if c else name, unit[0], where))
    if not isinstance(dose, int) or dose < 0:
        _refuse(DOSE_INVALID, "dose %r is not a whole number of %s x 10^-%d"
                % (dose, unit[0], unit[1]))
    if unit[3]:                          # weight: per-kg units only
        check_weight(e, weight_g, name, where)
    else:
        weight_g = None
    # hard limits on the dose as entered
    if e.hard_min is not None and dose < e.hard_min:
        _dose_refusal(BELOW_HARD_MIN, dose, e.hard_min, u, name, where)
    if dose > e.hard_max:
        _dose_refusal(ABOVE_HARD_MAX, dose, e.hard_max, u, name, where)
    # the exact rate and the hard limits as rates, rounded inward
    num, den = rate_factor(e, weight_g)
    hard_min_rate = 0
    if e.hard_min:
        hard_min_rate = ceil_rate(e.hard_min * num, den)
    hard_max_rate = floor_rate(e.hard_max * num, den)
    if hard_max_rate < sc.RATE_MIN_UL_PER_H or hard_min_rate > sc.RATE_MAX_UL_PER_H \
            or hard_min_rate > hard_max_rate:
        _refuse(HARD_RANGE_UNREACHABLE, "%s hard limits %s-%s at %s: no pump rate "
                "(0.1-500 mL/h in 0.1 steps) lies inside them" % (
                    name, dl.format_scaled(e.hard_min or 0, unit[1]),
                    dose_text(e.hard_max, u), conc_text(e) or "this entry"))
    rate = round_rate(dose * num, den)
    if rate < sc.RATE_MIN_UL_PER_H:
        _refuse(RATE_BELOW_PUMP_MIN, "dose %s gives %s: below the pump's minimum 0.1 mL/h"
                % (dose_text(dose, u), rate_text(rate)),
                "Gives %s: below the pump's 0.1 mL/h" % rate_text(rate))
    if rate > sc.RATE_MAX_UL_PER_H:
        _refuse(RATE_ABOVE_PUMP_MAX, "dose %s needs %s: above the pump's maximum 500 mL/h"
                % (dose_text(dose, u), rate_text(rate)),
                "Needs %s: above the pump's 500 mL/h" % rate_text(rate))
    if rate > hard_max_rate:
        rate = hard_max_rate             # inward, < 0.1 mL/h (rounding rule)
    if hard_min_rate and rate < hard_min_rate:
        rate = hard_min_rate
    if hard_max_rate > sc.RATE_MAX_UL_PER_H:
        hard_max_rate = sc.RATE_MAX_UL_PER_H
    # re-check the dose the programmed rate delivers (exact, cross-multiplied)
    given = rate * den
    if given > e.hard_max * num or (e.hard_min is not None and given < e.hard_min * num):
        _refuse(ENTRY_UNUSABLE, "rate %s would cross a hard limit of %s"
                % (rate_text(rate), name))
    soft = SOFT_NONE
    soft_limit = 0
    if e.soft_min is not None and (dose < e.soft_min or given < e.soft_min * num):
        soft = SOFT_BELOW_MIN
        soft_limit = e.soft_min
    elif e.soft_max is not None and (dose > e.soft_max or given > e.soft_max * num):
        soft = SOFT_ABOVE_MAX
        soft_limit = e.soft_max
    # VTBI
    if vtbi_ul is not None:
        if not isinstance(vtbi_ul, int):
            _refuse(VTBI_OUT_OF_RANGE, "VTBI %r is not a whole number of uL" % (vtbi_ul,))
        lo = e.vtbi_min_ul if e.vtbi_min_ul is not None else sc.VTBI_MIN_UL
        hi = e.vtbi_max_ul if e.vtbi_max_ul is not None else sc.VTBI_MAX_UL
        _refuse_outside(VTBI_OUT_OF_RANGE, "VTBI", vtbi_ul, lo, hi, ml_text, name, where)
    p = Plan()
    p.library_id = lib.library_id
    p.library_version = lib.version
    p.care_area = area.index
    p.care_area_name = area.name
    p.entry = e
    p.drug_id = drug_id
    p.drug_name = name
    p.dose = dose
    p.dose_unit = u
    p.weight_g = weight_g
    p.num = num
    p.den = den
    p.rate_ul_per_h = rate
    p.hard_min_rate_ul_per_h = hard_min_rate
    p.hard_max_rate_ul_per_h = hard_max_rate
    p.delivered, p.delivered_exact = delivered_dose(rate, num, den)
    p.vtbi_ul = vtbi_ul
    p.kvo_ul_per_h = kvo_ul_per_h
    p.occlusion_limit_mmhg = e.occlusion_mmhg if e.occlusion_mmhg is not None \
        else DEFAULT_OCCLUSION_MMHG
    p.bubble_limit_ul = e.air_limit_ul if e.air_limit_ul is not None else DEFAULT_BUBBLE_UL
    p.soft = soft
    p.soft_limit = soft_limit
    p.name_line = name[:21]
    p.dose_line = "" if unit[2] == "mL" else (
        ("" if p.delivered_exact else "~") + dose_text(p.delivered, u))[:21]
    return p


def soft_message(p):
    """'dose 550 mg/h above soft max 500 mg/h for Vancomycin: confirm to override'; when
    only the rounded rate crosses it, the dose that rate gives is named as well."""
    below = p.soft == SOFT_BELOW_MIN
    dose = dose_text(p.dose, p.dose_unit)
    if (p.dose < p.soft_limit) if below else (p.dose > p.soft_limit):
        what = "dose " + dose
    else:
        what = "dose %s gives %s at %s," % (dose, p.dose_line, rate_text(p.rate_ul_per_h))
    return "%s %s %s for %s: confirm to override" % (
        what, "below soft min" if below else "above soft max",
        dose_text(p.soft_limit, p.dose_unit), p.drug_name)


def _u32_as_i32(v):
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def program(app, care_area, drug_id, conc, dose, dose_unit, vtbi_ul, weight_g=None,
            kvo_ul_per_h=0, confirm_soft=False, library_id=None, library_version=None,
            dry_run=False):
    """Check, then load the program into the safety core through
    ``app.program_continuous`` with the hard rate limits; returns the Plan.

    Refusals raise ProgramError and are logged (events.LIBRARY_CHECK_REFUSED, a =
    reason, b = drug id); a soft limit without ``confirm_soft`` raises
    SOFT_LIMIT_NEEDS_CONFIRMATION (not logged: nothing was refused yet).  On success
    the log holds THERAPY_CONTEXT immediately followed by THERAPY_PROGRAMMED, then,
    for a confirmed soft limit, SOFT_LIMIT_OVERRIDE and the LOW alarm.  ``dry_run``
    checks (and logs refusals) without loading."""
    from firmware import alarms as al
    from firmware import events
    try:
        p = plan(app.library, care_area, drug_id, conc, dose, dose_unit, vtbi_ul, weight_g,
                 kvo_ul_per_h, library_id, library_version)
    except ProgramError as e:
        app.log.append(events.LIBRARY_CHECK_REFUSED, e.reason,
                       drug_id if isinstance(drug_id, int) else -1)
        raise
    if p.soft and not confirm_soft:
        raise ProgramError(SOFT_LIMIT_NEEDS_CONFIRMATION, soft_message(p))
    if dry_run:
        return p
    app.log.append(events.THERAPY_CONTEXT, _u32_as_i32(p.library_id),
                   _u32_as_i32(((p.library_version & 0xFFFF) << 16) | p.drug_id))
    try:
        app.program_continuous(p.rate_ul_per_h, p.vtbi_ul, kvo_ul_per_h,
                               p.occlusion_limit_mmhg, p.bubble_limit_ul,
                               p.hard_min_rate_ul_per_h, p.hard_max_rate_ul_per_h)
    except sc.CoreRefused as e:      # logged by program_continuous (PROGRAM_REFUSED)
        err = ProgramError(PUMP_REFUSED, "the pump refused the program: %s" % e)
        err.core = e
        raise err
    app.therapy = p
    if p.soft:
        app.log.append(events.SOFT_LIMIT_OVERRIDE,
                       p.drug_id | (p.dose_unit << 16) | (p.soft << 24), _u32_as_i32(p.dose))
        app.alarms.raise_alarm(al.SOFT_LIMIT_OVERRIDE, app.now_ms())
    return p
