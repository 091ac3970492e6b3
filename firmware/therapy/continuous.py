"""Continuous infusion (SR-TH-1): one rate to the VTBI, then KVO or stop."""
from firmware.therapy import Therapy, need_int


class Continuous(Therapy):
    NAME = "continuous"

    def plan(self):
        s = self.spec
        self.segments = [("CONTINUOUS", need_int(s, "rate_ul_per_h", 1),
                          need_int(s, "vtbi_ul", 1))]
