"""Patient-controlled analgesia (SR-TH-1): a basal rate plus patient boluses.

With "library" in the spec, the drug library's PCA limits for that drug bound the
program (firmware/therapy/library_limits.py).  The limits -- bolus size and rate, lockout, boluses per hour, the rolling 1 h and
4 h maxima -- go into the safety core with the program, and the core grants or
denies every press (SR-CORE-2); this module only asks, counts and reports.  A
clinician bolus (its own size) skips the lockout and the count, never the maxima.
Bolus-only PCA is not offered: the core's lowest rate (0.1 mL/h) is the smallest
basal (it keeps the vein open between presses).
"""
from firmware.therapy import Therapy, need_int


class Pca(Therapy):
    NAME = "pca"
    bolus_allowed = True

    def plan(self):
        s = self.spec
        self.segments = [("PCA", need_int(s, "basal_ul_per_h", 1), need_int(s, "vtbi_ul", 1))]

    def core_program(self, app=None):
        p = Therapy.core_program(self, app)
        s = self.spec
        p["bolus_ul"] = need_int(s, "bolus_ul", 1)
        p["bolus_rate_ul_per_h"] = need_int(s, "bolus_rate_ul_per_h", 1)
        p["lockout_s"] = need_int(s, "lockout_s", 1)
        p["max_boluses_per_h"] = need_int(s, "max_boluses_per_h", 0, default=0)
        p["max_4h_ul"] = need_int(s, "max_4h_ul", 0, default=0)
        app = app if app is not None else self.app
        if s.get("library") is not None:     # the pharmacist's PCA limits (SR-LIB-*)
            from firmware.therapy.library_limits import apply_pca
            apply_pca(app, s, p)
            self.drug_id = p.pop("drug_id")
        return p

    def report(self, app=None):
        r = Therapy.report(self, app)
        app = self.app if app is None else app
        r["window_1h_ul"] = app.core.window_ul()
        r["window_4h_ul"] = app.core.window_ul(True)
        r["bolus_ul"] = self.spec["bolus_ul"]
        r["clinician_boluses"] = app.core.field("clinician_boluses")
        return r
