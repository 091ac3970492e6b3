"""PT-8: heap use of the firmware on MicroPython (unix x64 port, reference core).

Prints the bytes allocated per core tick (target 0) and the steady-state live
heap with the application running (target <= 64 KB).  The figure here is for
the 64-bit unix port with every module's bytecode on the heap; on an RP2040 the
objects are half the size and the firmware is frozen into flash, so the device
figure is lower.  Measuring it on a board is left to a hardware session.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.test_micropython_heap import probe  # noqa: E402


def main():
    f = probe()
    print("PT-8  firmware heap on MicroPython unix x64 (%s core)" % f["core_backend"])
    print("  allocation per tick       %6d B  target 0" % f["per_tick_alloc_bytes"])
    print("  heap growth over 1 h      %6d B" % f["heap_growth_bytes"])
    print("  steady-state live heap    %6d B  target <= 65536 B  ratio %.2f "
          "(x64 port, bytecode on heap; not an RP2040 figure)" %
          (f["steady_heap_bytes"], f["steady_heap_bytes"] / 65536.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
