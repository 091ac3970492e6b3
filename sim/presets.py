"""Patient-line presets: catheter and extension-set numbers with their sources.

Resistance from Poiseuille, R = 8*mu*L / (pi*r^4), saline at 37 C
(mu = 0.70 mPa*s, close to water's 0.69 mPa*s); 1 mmHg = 133.32 Pa and
1 uL = 1e-9 m^3, so R[mmHg*s/uL] = R[Pa*s/m^3] * 1e-9 / 133.32.
Compliance: 0.010 mL/kPa (SPEC PT-4 anchor for a pump line) = 1.33 uL/mmHg.

* ``picc``: 4 Fr single-lumen PICC, 55 cm, lumen 0.6 mm ID (typical
  manufacturer data for 4 Fr PICCs: 0.5-0.7 mm) -> 0.91 mmHg*s/uL, plus
  an ambulatory extension set (1.5 m, 1.0 mm ID) -> 0.32 mmHg*s/uL.  Tip in
  the superior vena cava: central venous pressure ~5 mmHg (normal 2-8 mmHg).
* ``peripheral``: 22 G, 25 mm peripheral cannula, 0.41 mm ID (ISO 10555-5
  colour-coded sizes) -> 0.19 mmHg*s/uL, plus a 2 m, 1.0 mm ID set ->
  0.43 mmHg*s/uL.  Peripheral venous pressure ~8 mmHg (forearm vein,
  patient seated: 5-10 mmHg).

A preset may also name its cam mechanism model, ``"mechanism": "truthful"`` (issue 8
item 5; ``sim/mechanism_truthful.py``); none does, so every preset keeps the ideal
mechanism unless ``World(..., mechanism=...)`` asks otherwise.
"""
import math

SALINE_VISCOSITY_PA_S = 0.70e-3
PA_PER_MMHG = 133.32
COMPLIANCE_UL_PER_MMHG = 10.0 * PA_PER_MMHG / 1000.0   # 0.010 mL/kPa


def poiseuille_mmhg_s_per_ul(length_m, inner_diameter_mm):
    r_m = inner_diameter_mm / 2000.0
    r_pa_s_per_m3 = 8.0 * SALINE_VISCOSITY_PA_S * length_m / (math.pi * r_m ** 4)
    return r_pa_s_per_m3 * 1e-9 / PA_PER_MMHG


PRESETS = {
    "picc": {
        "resistance_mmhg_s_per_ul": poiseuille_mmhg_s_per_ul(0.55, 0.6)
        + poiseuille_mmhg_s_per_ul(1.5, 1.0),
        "compliance_ul_per_mmhg": COMPLIANCE_UL_PER_MMHG,
        "venous_mmhg": 5.0,
    },
    "peripheral": {
        "resistance_mmhg_s_per_ul": poiseuille_mmhg_s_per_ul(0.025, 0.41)
        + poiseuille_mmhg_s_per_ul(2.0, 1.0),
        "compliance_ul_per_mmhg": COMPLIANCE_UL_PER_MMHG,
        "venous_mmhg": 8.0,
    },
}
