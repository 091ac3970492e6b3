"""A library load cut by a power loss at EVERY byte it writes (SR-LIB-3).

For each n from 0 to the number of bytes a whole load writes to flash (slot, load
record, selector, its event-log records), the power is cut after n bytes
(``RamStorage.cut_power_after_bytes``, and nothing written after the cut), the pump
reboots (a new PumpApp on the same storage), and the active library must be the old
one (or none when there was none) or, only once the selector has been switched, the
new one, byte for byte, never a mix.  Then a new load of the same file must succeed,
resuming what the cut one left.  CPython (every byte: ~1,300 reboots per case; the
portable suite runs a sample under MicroPython).
"""
import pytest

from tests.mpy.svc_client import LIB, LIB_V4, resign
from tests.mpy.test_library_load import (base_storage, check_old_or_new, load_bytes,
                                         load_with_power_cut, provisioned_bench,
                                         DyingStorage)

LIB_V5 = resign(LIB, version=5)


def _base_with_old_in_slot_b():
    b = provisioned_bench(LIB, storage=DyingStorage())
    b.load(LIB_V4)                       # slot B active: the next load writes slot A
    assert b.app.libraries.active_slot == 1
    return b.storage


@pytest.mark.parametrize("case", ["no library", "old library in slot B"])
def test_power_cut_at_every_byte_of_a_load_leaves_old_or_new_SR_LIB_3(case):
    if case == "no library":
        base, old = base_storage(None), None
    else:
        base, old = _base_with_old_in_slot_b(), LIB_V4
    new = LIB_V5
    total = load_bytes(base, new)
    seen = set()
    for n in range(total + 1):
        done, b = load_with_power_cut(base, new, n)
        check_old_or_new(b, old, new, done)
        seen.add(b.active())
        if n % 17 == 0 or n > total - 70:
            # the technician runs the load again: it completes (resuming the slot)
            b.login()
            assert b.load(new) == (42, 5), n
            assert b.active() == (42, 5)
    # the cut fell both before and after the switch
    assert len(seen) == 2, seen
