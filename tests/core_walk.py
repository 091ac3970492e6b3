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


OPS = 13      # 0 load, 1 start, 2 pause, 3 ack, 4..7 run, 8 set_rate, 9..10 bolus, 11 window,
#               12 restore the history after a power loss


def _apply(core, op, a):
    try:
        if op == 0:
            core.load_program(a[0], a[1], a[2], a[3], a[4], max_1h_ul=a[5], max_4h_ul=a[6],
                              bolus_ul=a[7], bolus_rate_ul_per_h=a[8], lockout_s=a[9],
                              max_boluses_per_h=a[10], flags=a[11], hard_max_rate_ul_per_h=a[12])
        elif op == 1:
            core.start()
        elif op == 2:
            core.pause()
        elif op == 3:
            return core.acknowledge(a[0], a[1], a[2])
        elif op == 8:
            core.set_rate(a[0], a[1])
        elif op == 9 or op == 10:
            return core.bolus(a[0], a[1])
        elif op == 11:
            return (core.window_ul(), core.window_ul(True))
        elif op == 12:
            if a:
                core.restore_history(a[0], a[1], a[2])
        else:
            steps = 0
            answers = []
            for k in range(a[5]):
                steps += core.run(a[0], a[1], a[2], a[3] + k, a[4])
                if a[5] > 1 and k % 10 == 9:      # a patient pressing every 10 s
                    answers.append(core.bolus(0, 0))
            return steps, answers
    except sc.CoreRefused as e:
        return ("refused", e.code, str(e))
    return None


def _args(rng, op):
    r = rng.next
    if op == 0:
        rate = (r() % 6000) * 100 + ((r() % 100) if r() % 8 == 0 else 0)   # off-grid rates
        bubble = (50 + (r() % 19) * 25) if r() & 1 else r() % 600          # on-grid limits
        base = (rate, r() % 20000 + 50, (r() % 30) * 100, r() % 1100, bubble)
        if r() % 3 == 0:
            return base + (0, 0, 0, 0, 0, 0, 0, 0)
        if r() % 8 == 0:            # a prime: valid but for a rare volume over 30 mL
            vtbi = r() % 29000 + 100 if r() % 4 else 30000 + r() % 200
            return (base[0], vtbi, 0, base[3], base[4], 0, 0, 0, 0, 0, 0, 1, 0)
        # dose limits: small caps so that they bite, PCA boluses, rare prime / bad flags
        cap_1h = (r() % 60) * 100 if r() & 1 else 0
        cap_4h = (r() % 200) * 100 if r() % 3 == 0 else 0
        bolus = (r() % 20) * 100 if r() & 1 else 0
        bolus_rate = (r() % 3000) * 100 if r() % 4 else 0
        lockout = (r() % 120 + 55) if bolus else (r() % 2) * 60
        flags = 1 if r() % 16 == 0 else (2 if r() % 64 == 0 else 0)
        if cap_1h and r() & 1:      # a basal under the cap (else most loads are refused)
            base = ((cap_1h * (r() % 100) // 100) // 100 * 100,) + base[1:]
        if bolus and r() % 3 == 0:  # a 4 h maximum only, a few boluses' worth
            cap_1h = 0
            cap_4h = bolus * (r() % 4 + 2)
            base = ((cap_4h // 4 * (r() % 100) // 100) // 100 * 100,) + base[1:]
        hard_max = (r() % 50) * 1000 if r() % 4 == 0 else 0
        if bolus and r() % 3 == 0:  # PCA bounded by its count alone
            cap_1h = cap_4h = 0
        return base + (cap_1h, cap_4h, bolus, bolus_rate, lockout, r() % 5, flags, hard_max)
    if op == 8:
        return ((r() % 3000) * 100 + ((r() % 100) if r() % 8 == 0 else 0), r() % 22000)
    if op == 9 or op == 10:
        return (0 if op == 9 else r() % 3, r() % 6000)
    if op == 11:
        return ()
    if op == 12:
        if r() % 4:
            return ()
        ul_1h = r() % 8000
        return (ul_1h, ul_1h + r() % 12000 if r() & 1 else r() % 3000, r() % 8)
    if op == 3:
        return (r() % 600, r() & 1, r() % 4)
    # air: rare bubbles of 25..100 uL (some exactly at a limit), so the rolling
    # 15-minute window fills and also expires
    air_nl = (r() % 4 + 1) * 25000 if r() % 48 == 0 else 0
    if r() % 10:
        return (r() % 800 - 50, air_nl, r() & 1, r() % 4, r() % 150, 1)
    # now and then a long quiet run, fed every second as the application does:
    # rolling windows close, lockouts expire, caps bite
    return (r() % 100, 0, 0, r() % 4, 100, 10 + r() % 300)


def walk(core_a, core_b, steps=20000, seed=2463534242, stop_at_first=False):
    """Returns (agreeing steps, mismatching steps, first mismatch or None)."""
    rng = _Rng(seed)
    passed = 0
    failed = 0
    first = None
    for i in range(steps):
        op = rng.next() % OPS
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


# PCA programs the random walk reaches only by luck: each binds by one limit alone
# (hourly count, 1 h maximum, 4 h maximum), then a resume with history.
SCRIPTED_PCA = (
    dict(rate_ul_per_h=100, vtbi_ul=200000, bolus_ul=500, bolus_rate_ul_per_h=60000,
         lockout_s=60, max_boluses_per_h=3),
    dict(rate_ul_per_h=100, vtbi_ul=200000, bolus_ul=500, bolus_rate_ul_per_h=60000,
         lockout_s=60, max_1h_ul=1800),
    dict(rate_ul_per_h=100, vtbi_ul=200000, bolus_ul=500, bolus_rate_ul_per_h=60000,
         lockout_s=60, max_4h_ul=3000),
)


def scripted(core_a, core_b, hours=5):
    """Both cores through SCRIPTED_PCA with a press every 10 s and a power-loss resume;
    returns (agreeing steps, mismatching steps, first mismatch or None)."""
    passed = failed = 0
    first = None
    for n, prog in enumerate(SCRIPTED_PCA):
        for core in (core_a, core_b):
            core._core.init(core.ustep_volume_pl)     # a fresh state: no latched faults
            core.load_program(**prog)
            if n == 2:
                core.restore_history(800, 2000, 1)
            core.start()
        for k in range(hours * 360):
            out = []
            for core in (core_a, core_b):
                steps = 0
                for j in range(10):
                    steps += core.run(20, 0, 0, k * 10 + j, 100)
                out.append((steps, core.bolus(), core.snapshot()))
            if out[0] == out[1]:
                passed += 1
            else:
                failed += 1
                if first is None:
                    first = (n, k, out[0][:2], out[1][:2])
                break
    return passed, failed, first
