"""Linear-peristaltic cassette mechanism driven by the stepper (SPEC §2).

Owns the cam geometry: 3200 microsteps per cam revolution, 50 uL displaced per
revolution (anchor: CADD 0.050 mL/stroke), delivered only over the first
``DELIVERY_FRACTION`` of each revolution (the rest refills the segment), so the
output is pulsatile.  Volumes are closed-form functions of the absolute cam
position: no per-step loop, any step count costs the same.

The cam may turn backwards (negative steps: the motor backs off after an
occlusion stop): the volume function then gives a negative displaced volume.
The cam-shaft sensor (hall/optical) cannot tell the direction: it gives one
pulse each time a mark passes it, either way, so its count never decreases;
for forward-only motion it is ``position * pulses_per_rev // USTEPS_PER_REV``
as before.
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
        self._enc0 = 0           # marks behind the cam at power-on (not counted)
        self._enc_back = 0       # marks passed turning backwards

    def volume_at(self, position_usteps):
        """Volume displaced from position 0 to the given absolute position, uL."""
        revs = position_usteps // USTEPS_PER_REV
        within = position_usteps - revs * USTEPS_PER_REV
        if within > DELIVERY_USTEPS:
            within = DELIVERY_USTEPS
        return (revs + within / DELIVERY_USTEPS) * self.stroke_ul

    def move(self, steps):
        """Turn the cam by ``steps`` (negative: backwards); returns the volume pushed
        into the line, uL (negative: drawn back out of it)."""
        p0 = self.position_usteps
        p1 = p0 + steps
        self.position_usteps = p1
        if steps < 0:
            n = self.encoder_pulses_per_rev
            self._enc_back += p0 * n // USTEPS_PER_REV - p1 * n // USTEPS_PER_REV
        return self.volume_at(p1) - self.volume_at(p0)

    def encoder_count(self):
        """Pulses of the cam-shaft sensor since start (evenly spaced marks), counted as
        each mark passes in either direction: net marks forward + 2 x marks passed back."""
        return (self.position_usteps * self.encoder_pulses_per_rev // USTEPS_PER_REV
                - self._enc0 + 2 * self._enc_back)
