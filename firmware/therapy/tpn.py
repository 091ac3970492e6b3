"""Parenteral nutrition (SR-TH-1): taper up, plateau, taper down; early taper-down.

The plateau rate R is set so that the whole bag runs in the programmed duration:
with linear tapers (in four equal steps at R/5, 2R/5, 3R/5, 4R/5, which average
R/2) the volume is R * (duration - (up + down) / 2), so
R = vtbi * 3600 / (duration - (up + down) / 2), rounded down to the 0.1 mL/h grid.
Each taper step gets its volume (rate x step time, rounded down to the uL); the
plateau takes the rest, so the phases add up to the VTBI exactly.
Early taper-down (the nurse needs the line, the bag must come off): the plateau
ends now and the taper-down steps follow; the core is reprogrammed for what they
give, the rest of the bag is not infused (logged).
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from firmware.therapy import Therapy, TherapyError, need_int, on_grid

TAPER_STEPS = const(4)


class Tpn(Therapy):
    NAME = "tpn"

    def plan(self):
        s = self.spec
        vtbi = need_int(s, "vtbi_ul", 1)
        duration = need_int(s, "duration_s", 3600, 7 * 86400)
        up = need_int(s, "taper_up_s", 0, duration)
        down = need_int(s, "taper_down_s", 0, duration)
        if up + down >= duration:
            raise TherapyError("duration_s", "shorter than the tapers")
        plateau_rate = on_grid(vtbi * 3600 * 2 // (2 * duration - up - down))
        self.plateau_rate = plateau_rate
        up_segs = self._taper("TAPER UP", up, range(1, TAPER_STEPS + 1))
        down_segs = self._taper("TAPER DOWN", down, range(TAPER_STEPS, 0, -1))
        taper_ul = 0
        for seg in up_segs + down_segs:
            taper_ul += seg[2]
        if taper_ul >= vtbi:
            raise TherapyError("vtbi_ul", "smaller than the tapers alone")
        self.segments = up_segs + [("PLATEAU", plateau_rate, vtbi - taper_ul)] + down_segs
        self.down_segments = down_segs

    def _taper(self, name, seconds, ks):
        segs = []
        if seconds <= 0:
            return segs
        step_s = seconds // TAPER_STEPS
        for k in ks:
            rate = on_grid(self.plateau_rate * k // (TAPER_STEPS + 1))
            vol = rate * step_s // 3600
            if vol > 0:
                segs.append(("%s %d" % (name, k), rate, vol))
        return segs

    def early_taper_down(self, app):
        """Plateau (or taper up) ends now; the taper-down steps follow as a new program
        (a step profile of the taper: what the power-loss record and the display then
        show).  Returns (the new mode, the volume of the bag that will not be given)."""
        if not self.down_segments or self.segments[self.index][0].startswith("TAPER DOWN"):
            raise TherapyError("taper", "already tapering down or no taper-down programmed")
        from firmware.therapy.steps import Steps
        delivered = app.core.delivered_ul()
        n = len(self.history)
        history = self.history + self.report(app)["phases"][n:n + self.index + 1]
        down_ul = 0
        steps = []
        for seg in self.down_segments:
            down_ul += seg[2]
            steps.append([seg[1], seg[2]])
        spec = {"mode": "steps", "steps": steps, "taper_of": "tpn"}
        for key in ("kvo_ul_per_h", "occlusion_limit_mmhg", "bubble_limit_ul", "max_1h_ul"):
            spec[key] = self.spec[key]
        taper = Steps(spec)
        for i in range(len(taper.segments)):      # keep the taper's names in the report
            taper.segments[i] = self.down_segments[i]
        taper.history = history
        taper.base_ul = self.base_ul + delivered
        not_given = self.total_ul - delivered - down_ul
        app.pause()
        app.load_mode(taper)                     # logged as a new program; record re-armed
        app.start()
        return taper, not_given
