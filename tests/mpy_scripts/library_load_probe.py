"""Heap and time of a drug-library load on the pump side (PT-7, SR-LIB-3), printed as JSON.

A pump on the sim HAL with its files on disk (``PosixStorage`` in a temporary
directory, so the library's bytes are not on the heap as ``RamStorage`` would put
them), keys provisioned, a technician logged in; then the library is loaded frame by
frame as pumpctl sends it, one chunk per application cycle.  Each cycle is measured
on its own: ``gc.collect()`` before, the collector disabled during it, so
``gc.mem_alloc()`` after the cycle is the live heap plus everything the cycle
allocated (an upper bound of the true high-water mark).  Figures (bytes):

* ``base_live``: live heap of the idle pump, logged in, before the load;
* ``peak``: the largest ``mem_alloc()`` at the end of a load cycle;
* ``peak_above_base``: peak - base_live: what a load needs on top of a running pump;
* ``cycle_max``: the most one load cycle allocated;
* ``live_after``: live heap after the commit (the new library open for look-ups);
* ``commit_us``: the cycle that verifies the slot from flash and switches (wall time);
* ``library_bytes``, ``chunks``.

Usage: ``micropython tests/mpy_scripts/library_load_probe.py LIB.bin FLEET_KEY_HEX DIR``.
"""
import binascii
import gc
import json
import struct
import sys
import time

from firmware import protocol as p
from hal.sim import PosixStorage
from tests.mpy.svc_client import TECH_KEY, Bench, sha256


def main(path, key_hex, directory):
    fleet = binascii.unhexlify(key_hex)
    with open(path, "rb") as f:
        data = f.read()
    digest = sha256(data)
    b = Bench(storage=PosixStorage(directory))
    st = b.provision(TECH_KEY, fleet)
    assert st["prompt"] == 2, st
    b.login()
    have, chunk = b.begin(data)
    app = b.app
    port = b.port
    alloc = gc.mem_alloc
    gc.collect()
    base = alloc()
    peak = base
    cycle_max = 0
    chunks = 0
    commit_us = 0
    off = have
    while True:
        if off < len(data):
            body = struct.pack("<I", off) + data[off:off + chunk]
            port.feed(p.encode_frame(1, p.LIBRARY_CHUNK, b.frame(p.LIBRARY_CHUNK, body)))
            body = None
            chunks += 1
        else:
            port.feed(p.encode_frame(2, p.LIBRARY_COMMIT, b.frame(p.LIBRARY_COMMIT, digest)))
        gc.collect()
        a0 = alloc()
        gc.disable()
        t0 = time.ticks_us()
        app.cycle()
        t1 = time.ticks_us()
        a1 = alloc()
        gc.enable()
        b.world.advance(b.cycle_ms)
        if a1 > peak:
            peak = a1
        if a1 - a0 > cycle_max:
            cycle_max = a1 - a0
        replies = b.decoder.feed(port.drain())
        assert replies and replies[0][1] != p.ERROR, replies
        if off >= len(data):
            commit_us = time.ticks_diff(t1, t0)
            assert struct.unpack_from("<I", replies[0][2], 0)[0] == struct.unpack_from(
                "<I", data, 28)[0]
            break
        off = struct.unpack("<I", replies[0][2])[0]
    assert app.library is not None
    gc.collect()
    live_after = alloc()
    print(json.dumps({"base_live": base, "peak": peak, "peak_above_base": peak - base,
                      "cycle_max": cycle_max, "live_after": live_after,
                      "commit_us": commit_us, "library_bytes": len(data), "chunks": chunks,
                      "word_bytes": 8 if sys.maxsize > 2 ** 32 else 4}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
