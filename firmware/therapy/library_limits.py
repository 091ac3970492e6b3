"""PCA limits from the active drug library (SR-LIB-*, SR-TH-1): the pharmacist's maxima
for a drug x concentration, turned into the core's units (uL, s) and checked against
what the clinician programmed.

A PCA spec that names its drug -- "library": {"care_area": .., "drug_id": ..,
"conc": ..} -- takes the entry's PCA limits (stored in the dose unit's amount, e.g.
mg for mg/h: docs/DRUG_LIBRARY.md) and its hard maximum rate.  Amounts become uL
with the entry's exact rate factor (firmware/programming.rate_factor), rounded down
(inward), so the core can only hold the patient to less than the pharmacist allows.
A limit the spec leaves out (0) is the library's; one the spec sets must be inside it.
Imported only when a PCA program names a drug.
"""
from firmware import programming as pg
from firmware.therapy import TherapyError, need_int


def _entry(app, ref):
    lib = app.library
    if lib is None:
        raise TherapyError("library", "no drug library is loaded")
    if not isinstance(ref, dict):
        raise TherapyError("library", "must be {care_area, drug_id, conc}")
    try:
        area = pg._care_area(lib, ref.get("care_area", 0))
        return pg._entry(lib, area, ref.get("drug_id"), ref.get("conc"))
    except pg.ProgramError as e:
        raise TherapyError("library", str(e))


def apply_pca(app, spec, program):
    """Check the PCA program (kwargs of SafetyCore.load_program) against the library
    entry named by spec["library"] and complete it with the library's limits."""
    e = _entry(app, spec["library"])
    if e.pca is None:
        raise TherapyError("library", "drug %d has no PCA limits in the library" % e.drug_id)
    try:
        num, den = pg.rate_factor(e)
    except pg.ProgramError as err:
        raise TherapyError("library", str(err))
    bolus, lockout_min, per_h, dose_1h, dose_4h = e.pca
    lib_bolus_ul = bolus * num // den
    lib_1h_ul = dose_1h * num // den
    lib_4h_ul = dose_4h * num // den
    for name, value, lib_value in (("pca_max_bolus", lib_bolus_ul, bolus),
                                   ("pca_max_dose_1h", lib_1h_ul, dose_1h),
                                   ("pca_max_dose_4h", lib_4h_ul, dose_4h)):
        if lib_value and not value:      # 0 would mean "no limit" to the core
            raise TherapyError("library", "%s is below 1 uL at this concentration" % name)
    if program["bolus_ul"] > lib_bolus_ul:
        raise TherapyError("bolus_ul", "%d uL above the library's %d uL (%s)"
                           % (program["bolus_ul"], lib_bolus_ul, pg.dose_text(bolus, e.dose_unit)))
    if program["lockout_s"] < lockout_min * 60:
        raise TherapyError("lockout_s", "%d s below the library's %d min"
                           % (program["lockout_s"], lockout_min))
    for key, lib_value in (("max_boluses_per_h", per_h), ("max_1h_ul", lib_1h_ul),
                           ("max_4h_ul", lib_4h_ul)):
        mine = need_int(program, key, 0)
        if mine == 0:
            program[key] = lib_value
        elif mine > lib_value:
            raise TherapyError(key, "%d above the library's %d" % (mine, lib_value))
    # the basal is a dose rate of the entry: its hard maximum, inward, goes to the core
    hard_max = pg.floor_rate(e.hard_max * num, den)
    if not hard_max:
        raise TherapyError("library", "the hard maximum rate is below 0.1 mL/h at this "
                           "concentration")
    program["hard_max_rate_ul_per_h"] = hard_max
    if e.hard_min:
        program["hard_min_rate_ul_per_h"] = pg.ceil_rate(e.hard_min * num, den)
    program["drug_id"] = e.drug_id
    return program
