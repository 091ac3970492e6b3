"""Bit-exact differential tests: the C core (cffi) against the Python reference.

Both are driven with the same generated programs, sensor traces and
application commands; every state field must agree after every operation.
Covers SR-CORE-1, 2, 3, 5, 7, 8 through the shared behaviour.
"""
import pytest
from hypothesis import given, settings, strategies as st

import safety_core as sc
from tests.core_strategies import operations, programs, valid_programs

pytestmark = pytest.mark.skipif("cffi" not in sc.available_backends(),
                                reason="cffi build of the C core missing: run `make test`")


def load(core, prog):
    """A program tuple of tests/core_strategies.py into load_program."""
    d = prog[7] if len(prog) > 7 else (0, 0, 0, 0, 0, 0, 0)
    core.load_program(prog[0], prog[1], prog[2], prog[5], prog[6], prog[3], prog[4],
                      max_1h_ul=d[0], max_4h_ul=d[1], bolus_ul=d[2], bolus_rate_ul_per_h=d[3],
                      lockout_s=d[4], max_boluses_per_h=d[5], flags=d[6])


def _apply(core, op, arg):
    try:
        if op == "run":
            steps = core.run(*arg)
            return ("run", steps, core.faults, core.phase, core.fault_tick)
        if op == "start":
            core.start()
            return ("start", "ok")
        if op == "pause":
            core.pause()
            return ("pause",)
        if op == "ack":
            return ("ack", core.acknowledge(*arg))
        if op == "load":
            load(core, arg)
            return ("load", "ok")
        if op == "set_rate":
            core.set_rate(arg[0], arg[1])
            return ("set_rate", "ok")
        if op == "bolus":
            return ("bolus", core.bolus(arg[0], arg[1]), core.window_ul(), core.window_ul(True))
    except sc.CoreRefused as e:
        return (op, "refused", e.code, getattr(e, "field", None), getattr(e, "limit", None),
                str(e))
    raise AssertionError(op)


def _pair(pl=15625):
    return sc.SafetyCore(pl, backend="cffi"), sc.SafetyCore(pl, backend="reference")


@settings(max_examples=300, deadline=None)
@given(first=valid_programs, ops=st.lists(operations, min_size=1, max_size=40),
       pl=st.sampled_from([15625, 5000, 15000, 16000, 100000]))
def test_c_and_reference_agree_tick_by_tick_SR_CORE_1_2_3_5_7_8(first, ops, pl):
    c, r = _pair(pl)
    assert _apply(c, "load", first) == _apply(r, "load", first)
    assert _apply(c, "start", None) == _apply(r, "start", None)
    assert c.snapshot() == r.snapshot()
    for op, arg in ops:
        assert _apply(c, op, arg) == _apply(r, op, arg), (op, arg)
        assert c.snapshot() == r.snapshot(), (op, arg)


@settings(max_examples=500, deadline=None)
@given(prog=programs)
def test_validation_agrees_on_every_program_SR_CORE_1(prog):
    c, r = _pair()
    assert _apply(c, "load", prog) == _apply(r, "load", prog)
    assert c.snapshot() == r.snapshot()


@settings(max_examples=200, deadline=None)
@given(pl=st.integers(0, 200000))
def test_calibration_validation_agrees(pl):
    outcomes = []
    for backend in ("cffi", "reference"):
        try:
            core = sc.SafetyCore(pl, backend=backend)
            outcomes.append(("ok", core.snapshot()))
        except sc.ProgramRefused as e:
            outcomes.append(("refused", e.code, e.field, e.limit))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=60, deadline=None)
@given(prog=valid_programs, hb_period=st.integers(1, 100))
def test_long_run_to_kvo_agrees(prog, hb_period):
    """Whole infusions (to VTBI and into KVO) in batches, as the simulator runs them."""
    c, r = _pair()
    for core in (c, r):
        core.load_program(prog[0], prog[1], prog[2], prog[5], prog[6])
        core.start()
    hb = 0
    for _ in range(400):
        hb += 1
        assert c.run(10, 0, False, hb, hb_period) == r.run(10, 0, False, hb, hb_period)
    assert c.snapshot() == r.snapshot()
