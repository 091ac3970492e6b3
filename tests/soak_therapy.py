"""Therapy soak (`make soak`): the whole-pump state machine for >= 10,000 therapy-hours.

Runs tests/test_app_stateful.PumpMachine -- every mode, bouncy BOLUS presses, door,
battery, sensor and mechanism faults, power cuts, with all its invariants checked
after every step -- biased toward long therapies (a rule that programs a mode, starts
it and lets 6-24 h pass), until the simulated time with the core delivering reaches
the target.  Prints the therapy-hours, examples and wall time; exits non-zero on the
first broken invariant (with hypothesis's report of the sequence).
"""
import argparse
import sys
import time

from hypothesis import Phase, settings, strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from tests import test_app_stateful as sf


class LongTherapyMachine(sf.PumpMachine):
    """Nurse visits (PumpMachine._visit_and_run) with 6-24 h therapies: three copies of
    the rule make it the common step; the other rules (faults, presses, power cuts) fall
    in between."""

    @rule(spec=sf.mode_specs, hours=st.integers(6, 24))
    def long_therapy(self, spec, hours):
        self._visit_and_run(spec, hours)

    @rule(spec=sf.mode_specs, hours=st.integers(6, 24))
    def long_therapy_2(self, spec, hours):
        self._visit_and_run(spec, hours)

    @rule(spec=sf.mode_specs, hours=st.integers(6, 24))
    def long_therapy_3(self, spec, hours):
        self._visit_and_run(spec, hours)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=10000.0, help="therapy-hours to reach")
    ap.add_argument("--batch", type=int, default=40, help="examples per hypothesis run")
    args = ap.parse_args(argv)
    t0 = time.time()
    examples = 0
    while sf.THERAPY_SECONDS[0] < args.hours * 3600:
        run_state_machine_as_test(LongTherapyMachine, settings=settings(
            max_examples=args.batch, stateful_step_count=25, deadline=None, database=None,
            phases=[Phase.generate, Phase.shrink]))
        examples += args.batch
        print("  %8.1f therapy-hours after %d examples (%.0f s)"
              % (sf.THERAPY_SECONDS[0] / 3600.0, examples, time.time() - t0), flush=True)
    print("therapy soak: %.1f therapy-hours simulated in %d examples, %.0f s, every invariant "
          "held" % (sf.THERAPY_SECONDS[0] / 3600.0, examples, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
