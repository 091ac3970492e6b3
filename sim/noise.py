"""Reproducible sensor noise: xorshift32 + Irwin-Hall, identical on CPython and MicroPython.

Owns the only source of randomness in the simulator.  Integer state and
IEEE-double arithmetic with + - * / only, so a seed gives the same sequence
on both runtimes (the cross-runtime tests rely on it).
"""


class Noise:
    """Seeded pseudo-random source."""

    def __init__(self, seed=1):
        self.state = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next_u32(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def uniform(self):
        """Uniform in [0, 1)."""
        return self.next_u32() / 4294967296.0

    def gauss(self, sigma):
        """Approximately normal, mean 0: Irwin-Hall sum of 4 uniforms, scaled."""
        s = self.uniform() + self.uniform() + self.uniform() + self.uniform() - 2.0
        return s * sigma * 1.7320508075688772   # Var(sum of 4 U) = 1/3
