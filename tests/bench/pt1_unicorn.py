"""PT-1: the dose-loop tick on Cortex-M0+ counted by instruction-level emulation.

Prints worst-case and mean instructions per ``sc_tick`` over a workload that
covers every path (rates 0.1-500 mL/h, VTBI -> KVO, occlusion, air, heartbeat
loss, latched faults, acknowledge/restart), the core's ``.text`` size and its
stack use (measured by stack painting in the emulator, and from
``-fstack-usage``), each against the PT-1 target with a ratio.  Every tick is
also checked bit-exact against the host build (cffi).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.bench import armv6m_emu as emu  # noqa: E402

TARGET_INSNS = 200
TARGET_TEXT = 4096
TARGET_STACK = 256


def su_stack(su_path, names):
    frames = {}
    for line in open(su_path):
        parts = line.split()
        frames[parts[0].split(":")[-1]] = int(parts[1])
    return sum(frames.get(n, 0) for n in names), frames


def main():
    if not emu.toolchain_available():
        print("PT-1: arm-none-eabi-gcc missing (make toolchain)")
        return 1
    elf, obj, su = emu.build()
    counts, mismatches, same_state, core = emu.run_against_host(elf)
    worst = max(counts)
    mean = sum(counts) / len(counts)
    text = emu.text_size(obj)
    su_total, frames = su_stack(su, ("sc_tick", "sc_run"))
    print("PT-1  safety core on Cortex-M0+ (armv6m, -Os), unicorn instruction counts")
    print("  ticks measured          %8d" % len(counts))
    print("  instructions/tick worst %8d   target <= %d   ratio %.2f" %
          (worst, TARGET_INSNS, worst / TARGET_INSNS))
    print("  instructions/tick mean  %8.1f   target <= %d   ratio %.2f" %
          (mean, TARGET_INSNS, mean / TARGET_INSNS))
    samples = core.sample_counts
    print("  instructions/sample     %8d worst, %.1f mean over %d samples (sc_sample: once per"
          " 100 ms, not in the tick)" % (max(samples), sum(samples) / len(samples), len(samples)))
    print("  .text                   %8d B target <= %d B ratio %.2f" %
          (text, TARGET_TEXT, text / TARGET_TEXT))
    print("  stack, measured (paint) %8d B target <= %d B ratio %.2f  (deepest of all API calls)"
          % (core.max_stack, TARGET_STACK, core.max_stack / TARGET_STACK))
    print("  stack, -fstack-usage    %8d B (sc_tick %d + sc_run %d)" %
          (su_total, frames.get("sc_tick", 0), frames.get("sc_run", 0)))
    print("  armv6m vs host (cffi)   %s per tick, final state %s" %
          ("identical" if mismatches == 0 else "%d MISMATCHES" % mismatches,
           "identical" if same_state else "DIFFERENT"))
    return 0 if mismatches == 0 and same_state else 1


if __name__ == "__main__":
    sys.exit(main())
