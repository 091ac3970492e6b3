"""Intermittent infusion (SR-TH-1): a dose every N hours, KVO between doses.

The plan is dose, KVO gap, dose, ... dose: each dose runs at the dose rate; each gap
runs at the KVO rate for what is left of the interval after the dose, as a volume
(rate x time, rounded down to the uL), so a dose starts on time to within a cycle
plus the time of 1 uL at the KVO rate (36 s at 0.1 mL/h), never late, and every
phase has an exact volume.  After the last dose the core's own KVO
(post-VTBI) keeps the vein open.  Example: 100 mL of cefazolin over 30 min every
8 h for 24 h, KVO 5 mL/h.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from firmware.therapy import Therapy, TherapyError, need_int

MAX_DOSES = const(12)
INTERVAL_MAX_S = const(7 * 86400)


class Intermittent(Therapy):
    NAME = "intermittent"

    def plan(self):
        s = self.spec
        dose = need_int(s, "dose_ul", 1)
        rate = need_int(s, "dose_rate_ul_per_h", 1)
        interval = need_int(s, "interval_s", 60, INTERVAL_MAX_S)
        doses = need_int(s, "doses", 1, MAX_DOSES)
        kvo = need_int(s, "kvo_ul_per_h", 0)
        if doses > 1 and kvo == 0:
            raise TherapyError("kvo_ul_per_h", "needed between doses (KVO keeps the line open)")
        dose_s = dose * 3600 // rate
        if dose_s >= interval:
            raise TherapyError("interval_s", "%d s is shorter than a dose (%d s)" % (interval,
                                                                                    dose_s))
        gap_ul = kvo * (interval - dose_s) // 3600
        segs = []
        for k in range(doses):
            segs.append(("DOSE %d" % (k + 1), rate, dose))
            if k < doses - 1 and gap_ul > 0:
                segs.append(("KVO %d" % (k + 1), kvo, gap_ul))
        self.segments = segs
