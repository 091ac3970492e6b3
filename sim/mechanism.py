"""Linear-peristaltic cassette mechanism driven by the stepper (SPEC §2).

Owns the cam geometry: 3200 microsteps per cam revolution, 50 uL displaced per
revolution (anchor: CADD 0.050 mL/stroke), delivered only over the first
``DELIVERY_FRACTION`` of each revolution (the rest refills the segment), so the
output is pulsatile.  Volumes are closed-form functions of the absolute cam
position: no per-step loop, any step count costs the same.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

USTEPS_PER_REV = const(3200)        # 200 full steps x 16 microsteps
STROKE_UL = 50.0                     # per revolution, nominal
DELIVERY_USTEPS = const(2400)        # 75 % of the revolution delivers, 25 % refills


class Mechanism:
    """Cam position and the volume it has displaced."""

    def __init__(self, stroke_error=0.0, encoder_pulses_per_rev=1):
        self.position_usteps = 0
        self.stroke_ul = STROKE_UL * (1.0 + stroke_error)
        self.encoder_pulses_per_rev = encoder_pulses_per_rev

    def volume_at(self, position_usteps):
        """Volume displaced from position 0 to the given absolute position, uL."""
        revs = position_usteps // USTEPS_PER_REV
        within = position_usteps - revs * USTEPS_PER_REV
        if within > DELIVERY_USTEPS:
            within = DELIVERY_USTEPS
        return (revs + within / DELIVERY_USTEPS) * self.stroke_ul

    def move(self, steps):
        """Advance the cam; returns the volume pushed into the line, uL."""
        before = self.volume_at(self.position_usteps)
        self.position_usteps += steps
        return self.volume_at(self.position_usteps) - before

    def encoder_count(self):
        """Pulses of the cam-shaft sensor since start (evenly spaced marks)."""
        return self.position_usteps * self.encoder_pulses_per_rev // USTEPS_PER_REV
