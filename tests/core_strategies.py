"""Hypothesis strategies shared by the safety-core tests: programs and traces."""
from hypothesis import strategies as st

import safety_core as sc

rates = st.one_of(
    st.integers(1, 5000).map(lambda k: k * 100),            # valid 0.1..500 mL/h
    st.sampled_from([0, 50, 99, 100, 150, 500000, 500100, 600000]),
)
vtbis = st.one_of(st.integers(sc.VTBI_MIN_UL, 50000), st.sampled_from([0, 99, 9999000, 9999001]))
kvos = st.one_of(st.just(0), st.integers(1, 200).map(lambda k: k * 100), st.sampled_from([50, 150]))
occlusion_limits = st.one_of(st.integers(sc.OCCLUSION_MIN_MMHG, sc.OCCLUSION_MAX_MMHG),
                             st.sampled_from([0, 103, 1035]))
bubble_limits = st.one_of(st.integers(sc.BUBBLE_MIN_UL, sc.BUBBLE_MAX_UL), st.sampled_from([0, 49, 501]))
hard_limits = st.one_of(st.just(0), st.integers(1, 5000).map(lambda k: k * 100), st.just(600000))

# dose limits (SR-CORE-2, SR-TH-1): (max_1h, max_4h, bolus, bolus_rate, lockout_s,
# max_boluses_per_h, flags), valid and just outside, or none at all
caps = st.one_of(st.just(0), st.integers(1, 100).map(lambda k: k * 100),
                 st.sampled_from([99, 500000, 500001, 2000000, 2000001]))
dose_limits = st.one_of(
    st.just((0, 0, 0, 0, 0, 0, 0)),
    st.tuples(caps, caps,
              st.one_of(st.just(0), st.integers(1, 30).map(lambda k: k * 100),
                        st.sampled_from([99, 50000, 50001])),
              st.one_of(st.just(0), st.integers(1, 5000).map(lambda k: k * 100),
                        st.sampled_from([50, 500100])),
              st.one_of(st.just(0), st.integers(60, 900), st.sampled_from([59, 14400, 14401])),
              st.one_of(st.just(0), st.integers(1, 8), st.just(61)),
              st.sampled_from([0, 0, 0, 1, 2])),
)

programs = st.tuples(rates, vtbis, kvos, hard_limits, hard_limits, occlusion_limits, bubble_limits,
                     dose_limits)

valid_programs = st.tuples(
    st.integers(1, 5000).map(lambda k: k * 100),
    st.integers(sc.VTBI_MIN_UL, 20000),
    st.just(0),
    st.just(0),
    st.just(0),
    st.integers(sc.OCCLUSION_MIN_MMHG, sc.OCCLUSION_MAX_MMHG),
    st.integers(sc.BUBBLE_MIN_UL, sc.BUBBLE_MAX_UL),
).flatmap(lambda p: st.tuples(
    st.just(p[0]), st.just(p[1]),
    st.one_of(st.just(0), st.integers(1, min(p[0], 20000) // 100).map(lambda k: k * 100)),
    st.just(0), st.just(0), st.just(p[5]), st.just(p[6])))

run_inputs = st.tuples(
    st.one_of(st.integers(-50, 1200), st.sampled_from([-(2 ** 31), 2 ** 31 - 1])),  # mmHg
    st.one_of(st.just(0), st.integers(1, 600000), st.just(2 ** 32 - 1)),            # air nL
    st.booleans(),                                                                  # air present
    st.integers(0, 3),                                                              # heartbeat
    st.one_of(st.integers(0, 3), st.integers(4, 250), st.just(6000)),               # ticks
)

operations = st.one_of(
    st.tuples(st.just("run"), run_inputs),
    st.tuples(st.just("run"), run_inputs),
    st.tuples(st.just("run"), run_inputs),
    st.tuples(st.just("start"), st.just(None)),
    st.tuples(st.just("pause"), st.just(None)),
    st.tuples(st.just("ack"), st.tuples(st.integers(-10, 1200), st.booleans(), st.integers(0, 3))),
    st.tuples(st.just("load"), programs),
    st.tuples(st.just("set_rate"), st.tuples(rates, st.one_of(st.just(0), st.integers(0, 25000)))),
    st.tuples(st.just("bolus"), st.tuples(st.sampled_from([0, 0, 1, 2]),
                                         st.one_of(st.integers(0, 60000), st.just(2 ** 32 - 1)))),
)
