"""Prime (SR-TH-1): fill the set before it is connected to the patient.

A prime program carries the core's FLAG_PRIME: at most 30 mL, no KVO, no bolus, the
air stops off (pushing the air out is the point) and nothing counts toward the
rolling-hour cap; the core arms the air stops again with the next program."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from firmware.therapy import Therapy, need_int

PRIME_RATE_UL_PER_H = const(300000)   # 300 mL/h: a 20 mL set in 4 minutes


class Prime(Therapy):
    NAME = "prime"

    def plan(self):
        s = self.spec
        self.segments = [("PRIME", need_int(s, "rate_ul_per_h", 1, default=PRIME_RATE_UL_PER_H),
                          need_int(s, "volume_ul", 1))]

    def core_program(self, app=None):
        p = Therapy.core_program(self, app)
        p["flags"] = sc.FLAG_PRIME
        p["kvo_ul_per_h"] = 0
        return p
