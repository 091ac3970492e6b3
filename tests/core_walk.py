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


OPS = 16      # 0 load, 1 start, 2 pause, 3 ack, 4..7 run, 8 set_rate, 9..10 bolus, 11 window,
#               12 restore the history after a power loss, 13 motion check, 14 take the
#               back-off, 15 one sample alone (the device's path)


def _encoder(core, mode, k):
    """The cam encoder as a run sees it: 0 none (a stall), 1 healthy (one pulse per
    3200 steps forward, plus the back-off turned), 2 pulses of its own (a runaway)."""
    if mode == 1:
        return (core.field("motor_steps") + core.field("reversed_steps")) // 3200
    if mode == 2:
        return k // 3
    return 0


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
            return core.acknowledge(a[0], a[1], a[2], _encoder(core, a[3], 0))
        elif op == 13:
            core.set_motion_check(a[0])
        elif op == 14:
            back = core.take_backoff()
            core.backoff_done(back)     # the driver turns the motor back by it
            return back
        elif op == 15:
            return core.sample(a[0], _encoder(core, a[1], a[2]))
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
                # a line that fills: the pressure rises by a[6] mmHg per second
                steps += core.run(a[0] + a[6] * k, a[1], a[2], a[3] + k, a[4],
                                  _encoder(core, a[7], k))
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
        return (r() % 600, r() & 1, r() % 4, r() % 3)
    if op == 13:
        return ((0, 3200, 800, 100, 99, 3201)[r() % 6],)
    if op == 14:
        return ()
    if op == 15:
        return (r() % 800 - 50, r() % 3, r() % 50)
    # air: rare bubbles of 25..100 uL (some exactly at a limit), so the rolling
    # 15-minute window fills and also expires
    air_nl = (r() % 4 + 1) * 25000 if r() % 48 == 0 else 0
    enc = r() % 3 if r() % 16 == 0 else 1     # now and then a stall or a runaway
    if r() % 10:
        return (r() % 800 - 50, air_nl, r() & 1, r() % 4, r() % 150, 1, 0, enc)
    # now and then a long quiet run, fed every second as the application does:
    # rolling windows close, lockouts expire, caps bite, now and then a line fills
    slope = r() % 4 if r() % 3 == 0 else 0
    return (r() % 100, 0, 0, r() % 4, 100, 10 + r() % 300, slope, enc)


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


# Occlusions the random walk reaches only by luck: a line that closes at its compliance
# (0.75 mmHg per uL pumped, with +/-2 mmHg noise) at rates around the trend's limit, the
# back-off taken, the nurse 60 s later (acknowledge, restart: the line closes again), the
# cam encoder healthy (one pulse per 3200 steps, the back-off's turning included); then
# venous swings that must not stop it (1 mL/h) and a cam that turns by itself while stopped.
SCRIPTED_OCCLUSION = ((1000, 100, 900), (10000, 100, 900), (20000, 100, 900),
                      (20100, 100, 900), (100000, 100, 900), (100000, 10, 2500))
# (rate uL/h, ticks per sample: the simulator's 1 s or the board's 100 ms, samples)
VENOUS_SWINGS = ((0, 0), (300, -15), (500, 5), (548, 25), (565, 5), (800, -15), (1000, 25),
                 (1300, 5))
# (second, venous mmHg from then): two +20 steps inside a cam turn, then one of +40
STAIRS = ((0, 3, 6, 9, 34), (0, 10, 11, 21, 31))
# mmHg added per quarter turn pumped: rising every quarter but one quarter most of it
# (not a closed line), rising 30 in a turn but one quarter by 1 mmHg only (nor that)


def _pair_step(core_a, core_b, mmhg_of, t, cadence, extra_pulses=0):
    out = []
    for core in (core_a, core_b):
        enc = (core.field("motor_steps") + core.field("reversed_steps")) // 3200 + extra_pulses
        steps = core.run(mmhg_of(core), 0, 0, t, cadence, enc)
        out.append((steps, core.faults, core.snapshot()))
    return out


def scripted_occlusion(core_a, core_b):
    """Both cores through SCRIPTED_OCCLUSION, VENOUS_SWINGS and a runaway; returns
    (agreeing steps, mismatching steps, first mismatch or None)."""
    passed = failed = 0
    first = None
    rng = _Rng(77)
    runs = [(rate, cadence, samples, "clamp") for rate, cadence, samples in SCRIPTED_OCCLUSION]
    runs += [(1000, 100, 1500, "venous"), (10000, 100, 400, "runaway"),
             (1000, 100, 700, 0), (1000, 100, 700, 1), (300000, 100, 300, "high")]
    for rate, cadence, samples, kind in runs:
        for core in (core_a, core_b):
            core._core.init(core.ustep_volume_pl)
            core.set_motion_check(3200)
            core.load_program(rate, 9000000, occlusion_limit_mmhg=1034)
            core.start()
        clamp = None
        turned0 = 0                        # reverse steps turned before the line closed
        left = [0, 0]                      # back-off each driver still has to turn
        nurse_at = None
        extra = 0                          # pulses of a cam turning by itself
        per_s = 1000 // (cadence * 10)
        start = 120 * per_s                # the line closes after 2 minutes
        venous = 0
        for t in range(samples):
            noise = rng.next() % 5 - 2
            if kind == "clamp" and clamp is None and nurse_at is None and t >= start:
                clamp = core_a.field("pumped_steps")
            if kind == "venous":
                for at, v in VENOUS_SWINGS:
                    if t == at:
                        venous = v
            if kind in (0, 1) and t == start:
                clamp = core_a.field("trend_seg_start_steps")   # stairs on the segments
            if kind == "high" and t == start:
                clamp = core_a.field("pumped_steps")
                turned0 = core_a.field("turned_steps")
            if kind == "runaway":
                if t == 100:
                    for core in (core_a, core_b):
                        core.pause()
                if 100 <= t < 120 or t == 190:
                    extra += 1             # half a turn a second, by itself; then one
                    #                        pulse just before an acknowledge
                if t in (130, 170, 190, 200, 260):
                    for core in (core_a, core_b):
                        core.acknowledge(0, 0, t, (core.field("motor_steps") +
                                                   core.field("reversed_steps")) // 3200 + extra)
                if t == 200:
                    for core in (core_a, core_b):
                        try:
                            core.start()
                        except sc.CoreRefused:
                            pass

            def mmhg_of(core, noise=noise, venous=venous, clamp=clamp, kind=kind,
                        turned0=turned0):
                p = 8 + noise + venous
                if kind == "high":
                    p += 100              # 300 mL/h through the line: its own pressure
                if clamp is not None:
                    pumped = (core.field("pumped_steps") - clamp) & 0xFFFFFFFF
                    if kind in (0, 1):
                        p += STAIRS[kind][min(pumped // 800, 4)]
                    elif kind == "high":  # a closed line: what went in, less what came back
                        p += (pumped - (core.field("turned_steps") - turned0)) * 3 // 256
                    else:
                        p += pumped * 3 // 256
                return p
            out = _pair_step(core_a, core_b, mmhg_of, t, cadence, extra)
            if kind == "high":            # the driver takes every back-off, turns 8000/s
                backs = []
                for i, core in enumerate((core_a, core_b)):
                    left[i] += core.take_backoff()
                    chunk = min(left[i], 80 * cadence)
                    left[i] -= chunk
                    core.backoff_done(chunk)
                    backs.append((left[i], chunk))
                out.append(tuple(backs))
            elif kind == "clamp" and nurse_at is None and core_a.faults:
                backs = (core_a.take_backoff(), core_b.take_backoff())
                core_a.backoff_done(backs[0])     # the driver turns the motor back
                core_b.backoff_done(backs[1])
                out.append(backs)
                nurse_at = t + 60 * per_s
                clamp = None              # the back-off emptied the line
            elif nurse_at is not None and t >= nurse_at:
                nurse_at = None
                acks = []
                for core in (core_a, core_b):
                    enc = (core.field("motor_steps") + core.field("reversed_steps")) // 3200
                    left = core.acknowledge(mmhg_of(core) + 40, 0, t, enc)  # over the limit?
                    acks.append((left, core.acknowledge(0, 0, t, enc)))
                    try:
                        core.start()
                    except sc.CoreRefused:
                        pass
                out.append(tuple(acks))
            if out[0] == out[1] and all(o[0] == o[1] for o in out[2:] if len(o) == 2):
                passed += 1
            else:
                failed += 1
                if first is None:
                    first = (rate, cadence, kind, t, out[0][:2], out[1][:2])
                break
    return passed, failed, first
