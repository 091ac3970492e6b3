"""24 h of continuous infusion on the sim HAL, for the smallest-heap search of PT-8.

10 mL/h for 24 h (the ``continuous_24h`` scenario's program) on the PICC line,
sim HAL, ``BatchDoseDriver``, one firmware cycle per simulated second, the
display refreshed every 10th cycle.  Nothing is kept besides the firmware,
the sim world and a few counters (no trace), so the heap it needs is the
firmware's, plus the sim and the interpreter.  Run it as
``micropython -X heapsize=N tests/mpy_scripts/heap_24h.py [hours]``: it prints
one JSON line and exits 0, or dies with MemoryError when N is too small.
"""
import gc
import json
import sys

from firmware.app import PumpApp
from hal.sim import make_sim_hal
from sim.world import World

PHASE_RUNNING = 2
PHASE_KVO = 3


def main(hours):
    world = World(preset="picc", seed=1)
    hal = make_sim_hal(world, cycle_ms=1000)
    app = PumpApp(hal)
    app.boot()
    app.program_continuous(10000, 250000, kvo_ul_per_h=0, occlusion_limit_mmhg=300,
                           bubble_limit_ul=100)
    app.start()
    cycles = hours * 3600
    for _ in range(cycles):
        app.cycle()
        world.advance(1000)
    gc.collect()
    out = {
        "hours": hours,
        "phase": app.core.phase,
        "delivered_nl": app.core.delivered_nl(),
        "alarms": len(app.alarms.active),
        "log_seq": app.log.last_seq,
        "heap_bytes": gc.mem_alloc(),
        "heap_total_bytes": gc.mem_alloc() + gc.mem_free(),
        # the largest values the per-cycle path handled (all only grow): on a 32-bit
        # port an int above 2**30 - 1 is a heap object, so each must stay below it
        "small_int_values": {
            "now_ms": hal.clock.ticks_ms(),
            "cycles": app.cycles,
            "delivered_steps": app.core.delivered_steps,
        },
        # computed in safety_core's delivered_nl() (display every 10th cycle, STATUS):
        # above 2**30 after ~1.07 mL, so a heap int there on a 32-bit port
        "delivered_pl": app.core.delivered_steps * app.core.ustep_volume_pl,
    }
    # 10 mL/h for the whole run, no alarm: the run is valid only if it delivered
    assert app.core.phase in (PHASE_RUNNING, PHASE_KVO), out
    assert abs(out["delivered_nl"] - hours * 10000000) <= 20000, out
    assert not app.alarms.active, out
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
