"""Air bubbles travelling with the fluid past the ultrasonic air-in-line detector.

Owns the bubbles upstream of the detector: each is (front distance uL, volume
uL, volume already past uL).  The fluid column moves by the volume the pump
displaces, so a bubble of V uL takes V uL of pumping to cross the detector at
any rate.  Reports the air volume that crossed during a move (what the
device's detector integrates per step) and whether air sits in the detector.
"""


class AirPath:
    """Bubbles queued upstream of the detector."""

    def __init__(self):
        self.bubbles = []          # [front_ul, volume_ul, passed_ul]
        self.present = False
        self.total_passed_ul = 0.0

    def inject(self, volume_ul, distance_ul=0.0):
        """A bubble whose front is ``distance_ul`` of fluid upstream of the detector."""
        self.bubbles.append([distance_ul, float(volume_ul), 0.0])

    def move(self, volume_ul):
        """Fluid moved by ``volume_ul``; returns the air that crossed, uL."""
        if not self.bubbles:
            return 0.0
        crossed = 0.0
        present = False
        keep = []
        for b in self.bubbles:
            b[0] -= volume_ul
            passed = -b[0]
            if passed < 0.0:
                passed = 0.0
            elif passed > b[1]:
                passed = b[1]
            crossed += passed - b[2]
            b[2] = passed
            if b[0] <= 0.0 < b[0] + b[1]:
                present = True
            if b[0] + b[1] > 0.0:
                keep.append(b)
        self.bubbles = keep
        self.present = present
        self.total_passed_ul += crossed
        return crossed
