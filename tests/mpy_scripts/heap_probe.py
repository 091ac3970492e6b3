"""Heap figures of the firmware under MicroPython (PT-8), printed as JSON.

per_tick_alloc_bytes: extra bytes allocated by 1000 calls of the safety core's
run() (100 ticks each) over 10 calls, collector disabled (the difference cancels
the harness's own frame allocation): the per-tick path must be 0.
heap_growth_bytes: live heap after one more simulated hour of full firmware
cycles minus before it (a leak shows here).  steady_heap_bytes: live heap with
the application running (includes the bytecode of every imported module,
which the device build freezes into flash).
"""
import gc
import json

from firmware.app import PumpApp
from hal.sim import make_sim_hal
from sim.world import World

world = World(seed=1)
hal = make_sim_hal(world, cycle_ms=1000)
app = PumpApp(hal)
app.boot()
app.program_continuous(10000, 100000)
app.start()


def run_cycles(n):
    for _ in range(n):
        app.cycle()
        world.advance(1000)


def core_calls(core, n):
    for i in range(n):
        core.run(20, 0, False, i, 100)


run_cycles(60)
core_calls(app.core, 10)      # warm-up: first calls may fill caches


def allocated_by(n):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    core_calls(app.core, n)
    used = gc.mem_alloc() - a0
    gc.enable()
    return used


per_tick = allocated_by(1000) - allocated_by(10)
gc.collect()
before = gc.mem_alloc()
run_cycles(3600)
gc.collect()
after = gc.mem_alloc()
print(json.dumps({"per_tick_alloc_bytes": per_tick, "heap_growth_bytes": after - before,
                  "steady_heap_bytes": after, "core_backend": app.core.backend}))
