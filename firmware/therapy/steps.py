"""Step (variable-rate) profile (SR-TH-1): up to 24 (rate, volume) steps, e.g. IVIG
titration (0.5 -> 1 -> 2 -> 4 mL/kg/h every 30 min as tolerated)."""
from firmware.therapy import MAX_STEPS, Therapy, TherapyError


class Steps(Therapy):
    NAME = "steps"

    def plan(self):
        steps = self.spec.get("steps")
        if not isinstance(steps, (list, tuple)) or not steps:
            raise TherapyError("steps", "a list of [rate_ul_per_h, volume_ul] is needed")
        if len(steps) > MAX_STEPS:
            raise TherapyError("steps", "%d steps, at most %d" % (len(steps), MAX_STEPS))
        segs = []
        for i in range(len(steps)):
            step = steps[i]
            if not isinstance(step, (list, tuple)) or len(step) != 2:
                raise TherapyError("steps[%d]" % i, "must be [rate_ul_per_h, volume_ul]")
            for v in step:
                if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                    raise TherapyError("steps[%d]" % i, "rate and volume must be integers > 0")
            segs.append(("STEP %d" % (i + 1), step[0], step[1]))
        self.segments = segs
