"""Battery: one Li-ion cell, charge drawn by the electronics and the motor.

Owns the state of charge and the open-circuit voltage curve.  Figures: a
2000 mAh 18650-class cell; 25 mA for the MCU, display and sensors; up to
300 mA more for the motor at its maximum step rate (TMC2209, ~0.3 A coil
current), scaled by the fraction of that rate in use.  The
voltage curve is piecewise linear: 4.20 V full, 3.60 V at 10 %, 3.30 V empty.
"""


class Battery:
    """Coulomb counter and voltage."""

    def __init__(self, capacity_mah=2000.0, soc=1.0, idle_ma=25.0, motor_ma=300.0):
        self.capacity_mah = capacity_mah
        self.soc = soc
        self.idle_ma = idle_ma
        self.motor_ma = motor_ma
        self.charging = False

    def draw(self, dt_s, motor_duty):
        """Discharge for ``dt_s`` seconds with the motor busy ``motor_duty`` (0..1)."""
        ma = self.idle_ma + self.motor_ma * motor_duty
        self.soc -= ma * dt_s / 3600.0 / self.capacity_mah
        if self.soc < 0.0:
            self.soc = 0.0

    def voltage_mv(self):
        soc = self.soc
        if soc >= 0.1:
            return int(3600 + 600 * (soc - 0.1) / 0.9)
        return int(3300 + 300 * soc / 0.1)
