"""Fluid line between the pump and the patient: compliance, resistance, venous pressure.

Owns the lumped RC model of the downstream line: the pump pushes volume into
a compliant tube (C, uL/mmHg) that drains through the catheter resistance
(R, mmHg*s/uL) into the vein at venous pressure Pv.  With inflow Q held over
a step the pressure has the exact solution
    P(t+dt) = Pinf + (P - Pinf) * exp(-dt / (R*C)),  Pinf = Pv + Q*R,
and the volume reaching the patient follows from mass balance
    V_patient = Q*dt - C*(P(t+dt) - P(t)).
A closed downstream clamp (occlusion) is an infinite resistance: all inflow
is stored in the compliance and the pressure rises at Q/C.  A partly squeezed
line (the patient lies on it, ``squeeze``) multiplies R, and with it the time
constant R*C, so the solution above stays exact.  Negative inflow (the cam
turning backwards) drains the compliance: the pressure falls, and an open line
draws back from the patient (a negative volume reaching the patient), with mass
balance kept.  ``venous_mmhg`` may change at any time (patient posture): the
pressure relaxes toward the new equilibrium with the same time constant.
"""
import math


class FluidLine:
    """Pressure state of the downstream line."""

    def __init__(self, resistance_mmhg_s_per_ul, compliance_ul_per_mmhg, venous_mmhg):
        self.resistance = resistance_mmhg_s_per_ul
        self.resistance_open = resistance_mmhg_s_per_ul   # not squeezed
        self.compliance = compliance_ul_per_mmhg
        self.venous_mmhg = venous_mmhg
        self.pressure_mmhg = venous_mmhg
        self.clamped = False
        self._tau_s = resistance_mmhg_s_per_ul * compliance_ul_per_mmhg

    def squeeze(self, factor):
        """Resistance ``factor`` times the open line's (>= 1.0; 1.0 = released)."""
        if not factor >= 1.0:
            raise ValueError("squeeze factor %r < 1.0" % (factor,))
        self.resistance = self.resistance_open * factor
        self._tau_s = self.resistance * self.compliance

    def step(self, inflow_ul, dt_s):
        """Push ``inflow_ul`` in over ``dt_s``; returns the volume reaching the patient."""
        p0 = self.pressure_mmhg
        c = self.compliance
        if self.clamped:
            self.pressure_mmhg = p0 + inflow_ul / c
            return 0.0
        q = inflow_ul / dt_s
        p_inf = self.venous_mmhg + q * self.resistance
        p1 = p_inf + (p0 - p_inf) * math.exp(-dt_s / self._tau_s)
        self.pressure_mmhg = p1
        return inflow_ul - c * (p1 - p0)
