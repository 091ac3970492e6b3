"""Differential walk under MicroPython: the native module against the reference core.

Drives ``sc_native`` (through the facade) and the pure-Python reference with the
same pseudo-random programs, sensor inputs and commands, and compares every
state word after every operation.  Prints ``N passed, M failed``.
"""
import safety_core as sc

native = sc.SafetyCore(backend="native")
ref = sc.SafetyCore(backend="reference")
x = 2463534242
passed = 0
failed = 0


def rnd():
    global x
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def apply(core, op, a):
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


for i in range(20000):
    r = rnd()
    op = r % 8
    if op == 0:
        args = ((rnd() % 6000) * 100, rnd() % 20000 + 50, (rnd() % 30) * 100,
                rnd() % 1100, rnd() % 600)
    elif op == 3:
        args = (rnd() % 600, rnd() & 1, rnd() % 4)
    else:
        args = (rnd() % 800 - 50, (rnd() % 200000) if rnd() % 16 == 0 else 0,
                rnd() & 1, rnd() % 4, rnd() % 150)
    a = apply(native, op, args)
    b = apply(ref, op, args)
    if a == b and native.snapshot() == ref.snapshot():
        passed += 1
    else:
        failed += 1
        if failed < 5:
            print("mismatch at step", i, op, args, a, b)
print("%d passed, %d failed" % (passed, failed))
