"""A tiny deterministic PRNG for scenarios: xorshift32, integers only.

Owns the random numbers the simulator's scenarios need (patient button
presses) so that a scenario draws the very same sequence under CPython and
under MicroPython (``random`` differs between them and may be absent on a
port).  Integer arithmetic only, every value masked to 32 bits: no float,
no libm, so the two runtimes cannot round differently.
"""

_MASK32 = 0xFFFFFFFF


class XorShift32:
    """Marsaglia's xorshift32 (13, 17, 5): period 2**32 - 1, state never 0."""

    def __init__(self, seed):
        state = int(seed) & _MASK32
        self.state = state if state else 0x9E3779B9

    def next_u32(self):
        x = self.state
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self.state = x
        return x

    def below(self, n):
        """An integer in [0, n) (n <= 2**32; the modulo bias is < n / 2**32)."""
        return self.next_u32() % n


def poisson_times_s(seed, mean_interval_s, start_s, end_s):
    """Event times (whole seconds, start_s <= t < end_s) of a Poisson process with
    mean interval ``mean_interval_s``: in each second an event happens with
    probability 1/mean_interval_s (the discrete-time Poisson process, geometric
    inter-arrival times with that mean).  Integers only: identical on every runtime."""
    if mean_interval_s < 1:
        raise ValueError("mean_interval_s must be >= 1, not %r" % (mean_interval_s,))
    rng = XorShift32(seed)
    threshold = (_MASK32 + 1) // mean_interval_s     # P(event in one second) = 1/mean
    times = []
    for t in range(start_s, end_s):
        if rng.next_u32() < threshold:
            times.append(t)
    return times
