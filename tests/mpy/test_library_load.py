"""Drug-library load over the service link (SR-LIB-2, SR-LIB-3, SR-LOG-1): A/B slots, the
new slot verified from flash before one atomic switch; every refused library leaves the old
one active with a clear message and a LIBRARY_REJECTED record; interrupted loads resume;
loading while infusing is refused; power cuts (sampled here, every byte in
tests/test_library_load_powercut.py) leave the old or the new library, never a mix.
Portable: CPython and MicroPython.
"""
import struct

import safety_core as sc
from firmware import events
from firmware import library_store as ls
from firmware import protocol as p
from hal.sim import RamStorage
from hal.ram_storage import EIO, PowerCut
from tests.mpy.svc_client import (LIB, LIB_V4, Bench, PumpError, provisioned_bench, resign,
                                  sha256)

OTHER_FLEET_KEY = bytes(range(1, 33))


def _refused(b, data, fragment, old):
    """Load ``data``: refused with ``fragment`` in the message, ``old`` still active."""
    try:
        b.load(data)
        assert False, "accepted"
    except PumpError as e:
        assert e.code == p.E_REFUSED, e
        assert fragment in e.message, e.message
        assert "previous one stays active" in e.message
    assert b.active() == old
    return b.logged(events.LIBRARY_REJECTED)[-1]


def test_load_switches_slots_and_status_shows_the_library_SR_LIB_3():
    b = provisioned_bench()
    assert b.active() is None
    assert b.load(LIB) == (42, 3)
    assert b.active() == (42, 3) and b.app.libraries.active_slot == 0
    st = p.decode_status(b.request(p.STATUS))
    assert (st["library_id"], st["library_version"]) == (42, 3)
    assert b"library 42 v3" in b.request(p.IDENTIFY)
    assert b.load(LIB_V4) == (42, 4)
    assert b.app.libraries.active_slot == 1
    assert b.logged(events.LIBRARY_LOADED)[-1][4:] == (42, 4)
    assert [r[4] for r in b.logged(events.SERVICE_COMMAND)][-4:] == [
        p.LIBRARY_LOAD, p.LIBRARY_COMMIT, p.LIBRARY_LOAD, p.LIBRARY_COMMIT]
    # look-ups read the slot through the store's open file
    lib = b.app.library
    ca = lib.care_area_index("Adult home")
    assert lib.find(ca, 101, 2, 5000, 1000).hard_max == 600000
    # the next boot opens the same slot again
    b.boot()
    assert b.active() == (42, 4) and b.app.libraries.active_slot == 1
    info = b.request(p.LIBRARY_INFO)
    assert struct.unpack_from("<II", info, 0) == (42, 4)


def test_wrong_fleet_key_refused_old_library_stays_SR_LIB_2():
    b = provisioned_bench(LIB)
    rec = _refused(b, resign(LIB, key=OTHER_FLEET_KEY, version=9), "authentication tag", (42, 3))
    assert rec[4] == ls.R_TAG


def test_wrong_model_refused_SR_LIB_2():
    b = provisioned_bench(LIB)
    rec = _refused(b, resign(LIB, version=9, model="AMB-PUMP-2"), "another pump model", (42, 3))
    assert rec[4] == ls.R_MODEL


def test_truncated_file_refused_SR_LIB_2():
    b = provisioned_bench(LIB)
    _refused(b, LIB_V4[:-1], "truncated", (42, 3))
    _refused(b, LIB_V4[:600], "truncated", (42, 3))
    _refused(b, LIB_V4 + b"\x00", "longer than", (42, 3))


def test_a_flipped_byte_anywhere_is_refused_sampled_SR_LIB_2():
    b = provisioned_bench(LIB)
    n = len(LIB_V4)
    body = n - 36
    positions = sorted(set(list(range(0, 80, 3)) + list(range(80, n, 41)) +
                           [body, body + 3, body + 4, n - 1]))
    for i in positions:
        bad = bytearray(LIB_V4)
        bad[i] ^= 0x10
        try:
            b.load(bytes(bad))
            assert False, "flip at %d accepted" % i
        except PumpError as e:
            assert e.code in (p.E_REFUSED, p.E_BAD_ARGS), (i, e)
        assert b.active() == (42, 3), i
    b.boot()
    assert b.active() == (42, 3)


def test_no_fleet_key_no_library():
    b = Bench()
    err, msg = b.error_of(p.LOGIN_CHALLENGE)
    assert err == p.E_NOT_AUTHORISED
    assert b.active() is None


def test_loading_while_infusing_is_refused_SR_LIB_3():
    b = provisioned_bench(LIB)
    b.app.program_continuous(10000, 100000)
    b.app.start()
    b.cycle(5)
    for phase_name, action in (("RUNNING", None), ("PAUSED", b.app.pause)):
        if action:
            action()
        assert sc.PHASE_NAMES[b.app.core.phase] == phase_name
        try:
            b.load(LIB_V4)
            assert False
        except PumpError as e:
            assert e.code == p.E_BUSY and "stop the infusion first" in e.message, e
            assert phase_name in e.message
        assert b.active() == (42, 3)
    # a chunk or a commit sneaking in mid-therapy is refused too
    err, msg = b.error_of(p.LIBRARY_COMMIT, b.frame(p.LIBRARY_COMMIT, sha256(LIB_V4)))
    assert err == p.E_BUSY


def test_an_interrupted_load_resumes_from_the_last_acknowledged_chunk_SR_LIB_3():
    b = provisioned_bench(LIB)
    assert b.load(LIB_V4, chunk=200, stop_at=600) is None
    # the technician runs the load again: new session, the pump resumes at byte 600
    b.write(p.LOGOUT)
    b.login()
    have, _ = b.begin(LIB_V4)
    assert have == 600
    assert b.load(LIB_V4, chunk=200) == (42, 4)
    # the same after a reboot: the slot and the load record are on flash
    lib5 = resign(LIB, version=5)
    b.load(lib5, chunk=300, stop_at=900)
    b.boot()
    assert b.active() == (42, 4)
    b.login()
    assert b.begin(lib5)[0] == 900
    assert b.load(lib5) == (42, 5)
    # another file restarts from 0
    lib6 = resign(LIB, version=6)
    b.load(lib6, chunk=300, stop_at=300)
    assert b.begin(resign(LIB, version=7))[0] == 0


def test_chunks_out_of_order_are_not_written_and_the_count_says_where_to_go_on():
    b = provisioned_bench()
    b.begin(LIB)
    r = b.write(p.LIBRARY_CHUNK, struct.pack("<I", 100) + LIB[100:200])   # a gap
    assert struct.unpack("<I", r)[0] == 0
    r = b.write(p.LIBRARY_CHUNK, struct.pack("<I", 0) + LIB[:300])
    assert struct.unpack("<I", r)[0] == 300
    r = b.write(p.LIBRARY_CHUNK, struct.pack("<I", 0) + LIB[:300])        # a duplicate
    assert struct.unpack("<I", r)[0] == 300
    err, msg = b.error_of(p.LIBRARY_COMMIT, b.frame(p.LIBRARY_COMMIT, sha256(LIB)))
    assert err == p.E_BAD_ARGS and "only 300 of" in msg
    err, msg = b.error_of(p.LIBRARY_CHUNK, b.frame(
        p.LIBRARY_CHUNK, struct.pack("<I", 300) + b"\x00" * 900))
    assert err == p.E_BAD_ARGS and "runs past the 1149 bytes announced" in msg


def test_a_retried_commit_is_answered_again():
    b = provisioned_bench()
    b.load(LIB)
    r = b.write(p.LIBRARY_COMMIT, sha256(LIB))
    assert struct.unpack_from("<II", r, 0) == (42, 3)


def test_a_damaged_active_slot_gives_no_library_at_boot_and_is_logged_SR_LIB_3():
    b = provisioned_bench(LIB)
    b.storage.files[ls.SLOTS[0]][300] ^= 0xFF
    b.boot()
    assert b.active() is None
    assert b.logged(events.LIBRARY_REJECTED)[-1][4:] == (ls.R_CRC, 42)
    info = b.request(p.LIBRARY_INFO)
    assert b"CRC mismatch" in info
    # a damaged selector, a missing slot: the same, never an exception
    b.storage.files[ls.SELECTOR][6] ^= 1
    b.boot()
    assert b.active() is None and b.logged(events.LIBRARY_REJECTED)[-1][4] == ls.R_SELECTOR
    b.login()
    b.load(LIB_V4)
    del b.storage.files[ls.SLOTS[b.app.libraries.active_slot]]
    b.boot()
    assert b.active() is None and b.logged(events.LIBRARY_REJECTED)[-1][4] == ls.R_STORAGE


def test_a_fleet_key_change_rechecks_the_active_library():
    from firmware import auth as au
    b = provisioned_bench(LIB)
    body = bytes((2,)) + au.wrap(b.session_key, b.seq + 1, bytes(32) + OTHER_FLEET_KEY)
    r = b.write(p.KEY_CHANGE, body)
    assert r[1] == 0                                 # no library active any more
    assert b.active() is None
    assert b.load(resign(LIB, key=OTHER_FLEET_KEY, version=8)) == (42, 8)


class DyingStorage(RamStorage):
    """RamStorage whose power, once cut, stays off: the write in progress stops part-way
    and every later write, rename or remove fails, as on a board that lost its supply."""

    dead = False

    def _allow(self, n):
        if self.dead:
            raise PowerCut(EIO)
        allowed = RamStorage._allow(self, n)
        if allowed < n:
            self.dead = True
        return allowed

    def rename(self, old, new):
        if self.dead:
            raise PowerCut(EIO)
        RamStorage.rename(self, old, new)

    def remove(self, name):
        if self.dead:
            raise PowerCut(EIO)
        RamStorage.remove(self, name)

    def revive(self):
        self.dead = False
        self.restore_power()

    def clone(self):
        s = DyingStorage()
        for name in self.files:
            s.files[name] = bytearray(self.files[name])
        return s


def base_storage(old=LIB):
    """Keys provisioned and ``old`` (or no library) active."""
    b = provisioned_bench(old, storage=DyingStorage())
    return b.storage


def load_with_power_cut(base, new, n):
    """Boot on a copy of ``base``, log in, cut the power after ``n`` bytes of the load of
    ``new``, reboot.  Returns (completed, bench after the reboot)."""
    storage = base.clone()
    b = Bench(storage=storage)
    b.login()
    storage.cut_power_after_bytes(n)
    done = False
    try:
        done = b.load(new) is not None and not storage.dead
    except Exception:
        pass
    storage.revive()
    b.boot()
    return done, b


def load_bytes(base, new):
    """Bytes written to flash by a whole load of ``new``."""
    storage = base.clone()
    b = Bench(storage=storage)
    b.login()
    before = storage.bytes_written
    b.load(new)
    return storage.bytes_written - before


def check_old_or_new(b, old, new, done):
    """After the reboot: the old library or the new one, whole; the new one if the load
    had completed."""
    active = b.active()
    want_old = None if old is None else struct.unpack_from("<II", old, 28)
    want_new = struct.unpack_from("<II", new, 28)
    assert active in (want_old, want_new), active
    if done:
        assert active == want_new
    if active is not None:
        data = bytes(b.storage.files[ls.SLOTS[b.app.libraries.active_slot]])
        assert data == (new if active == want_new else old)


def test_power_cut_during_a_load_sampled_leaves_old_or_new_SR_LIB_3():
    for old in (LIB, None):
        base = base_storage(old)
        total = load_bytes(base, LIB_V4)
        assert total > len(LIB_V4)
        for n in list(range(0, total, 97)) + [total - 1, total]:
            done, b = load_with_power_cut(base, LIB_V4, n)
            check_old_or_new(b, old, LIB_V4, done)
        assert done, "the full budget completes the load"


def test_load_refused_while_a_library_program_waits_to_start_SR_LIB_4():
    """A program from library v3, not started yet: loading v4 would leave the display and
    STATUS naming v4 with v3's drug, so the load waits until the program is run or replaced."""
    from tests.mpy.test_programming import ADULT, VANCO
    b = provisioned_bench(library=LIB)
    b.app.program_from_library(ADULT, VANCO, 0, 500000, "mg/h", 250000)
    assert b.app.core.phase == sc.PHASE_READY and b.app.therapy is not None
    try:
        b.load(LIB_V4)
        assert False, "load must be refused while a library program waits"
    except PumpError as e:
        assert e.code == p.E_BUSY and "waiting to start" in e.message
    assert b.active() == (42, 3)
