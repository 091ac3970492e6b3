"""A deterministic differential walk over the safety-core API (portable).

Drives two cores (any backends) with the same pseudo-random programs, sensor
inputs and commands and compares results and every state word after every
operation.  Used by the native-module test under MicroPython and by the
mutation test under CPython.
"""
import safety_core as sc


class _Rng:
    def __init__(self, seed):
        self.x = seed or 1

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x


def _apply(core, op, a):
    try:
        if op == 0:
            core.load_program(a[0], a[1], a[2], a[3], a[4])
        elif op == 1:
            core.start()
        elif op == 2:
            core.pause()
        elif op == 3:
            return core.acknowledge(a[0], a[1], a[2])
        else:
            return core.run(a[0], a[1], a[2], a[3], a[4])
    except sc.CoreRefused as e:
        return ("refused", e.code, str(e))
    return None


def _args(rng, op):
    r = rng.next
    if op == 0:
        rate = (r() % 6000) * 100 + ((r() % 100) if r() % 8 == 0 else 0)   # off-grid rates
        bubble = (50 + (r() % 19) * 25) if r() & 1 else r() % 600          # on-grid limits
        return (rate, r() % 20000 + 50, (r() % 30) * 100, r() % 1100, bubble)
    if op == 3:
        return (r() % 600, r() & 1, r() % 4)
    # air: rare bubbles of 25..100 uL (some exactly at a limit), so the rolling
    # 15-minute window fills and also expires
    air_nl = (r() % 4 + 1) * 25000 if r() % 128 == 0 else 0
    return (r() % 800 - 50, air_nl, r() & 1, r() % 4, r() % 150)


def walk(core_a, core_b, steps=20000, seed=2463534242, stop_at_first=False):
    """Returns (agreeing steps, mismatching steps, first mismatch or None)."""
    rng = _Rng(seed)
    passed = 0
    failed = 0
    first = None
    for i in range(steps):
        op = rng.next() % 8
        args = _args(rng, op)
        a = _apply(core_a, op, args)
        b = _apply(core_b, op, args)
        if a == b and core_a.snapshot() == core_b.snapshot():
            passed += 1
        else:
            failed += 1
            if first is None:
                first = (i, op, args, a, b)
            if stop_at_first:
                break
    return passed, failed, first
