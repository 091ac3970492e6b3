/*
 * test_core.c -- C unit tests of the safety core, built with ASan + UBSan.
 *
 * Owns the C-level checks that do not need Python: API contracts, exact
 * accounting, each interlock, and a bounded random walk over the whole API
 * that lets the sanitizers look for undefined behaviour and out-of-bounds
 * access.  Prints "N passed, M failed" and exits non-zero on failure.
 */
#include <stdio.h>
#include <string.h>

#include "safety_core.h"

static unsigned passed;
static unsigned failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
        }                                                                      \
    } while (0)

static sc_program_t program(uint32_t rate, uint32_t vtbi, uint32_t kvo)
{
    sc_program_t p;
    memset(&p, 0, sizeof p);
    p.rate_ul_per_h = rate;
    p.vtbi_ul = vtbi;
    p.kvo_ul_per_h = kvo;
    p.occlusion_limit_mmhg = 300u;
    p.bubble_limit_ul = 100u;
    return p;
}

static sc_inputs_t inputs(int32_t mmhg, uint32_t air_nl, uint32_t air_present, uint32_t hb)
{
    sc_inputs_t in;
    in.downstream_mmhg = mmhg;
    in.air_nl = air_nl;
    in.air_present = air_present;
    in.heartbeat = hb;
    in.encoder_count = 0u;
    return in;
}

static void start_running(sc_state_t *s, uint32_t rate, uint32_t vtbi, uint32_t kvo)
{
    sc_refusal_t why;
    sc_program_t p = program(rate, vtbi, kvo);
    CHECK(sc_init(s, 15625u, &why) == SC_OK);
    CHECK(sc_load_program(s, &p, &why) == SC_OK);
    CHECK(sc_start(s) == SC_OK);
}

static void test_refusals_name_field_and_limit(void)
{
    sc_state_t s;
    sc_refusal_t why;
    sc_program_t p = program(520000u, 1000u, 0u);
    CHECK(sc_init(&s, 1000u, &why) == SC_ERR_BELOW_MIN);
    CHECK(why.field == SC_FIELD_USTEP_VOLUME && why.limit == SC_USTEP_VOLUME_MIN_PL);
    CHECK(sc_init(&s, 15625u, &why) == SC_OK);
    CHECK(sc_load_program(&s, &p, &why) == SC_ERR_ABOVE_MAX);
    CHECK(why.field == SC_FIELD_RATE && why.limit == SC_RATE_MAX_UL_PER_H);
    CHECK(s.phase == SC_PHASE_IDLE);
    p = program(10000u, 1000u, 15000u);
    CHECK(sc_load_program(&s, &p, &why) == SC_ERR_ABOVE_MAX);
    CHECK(why.field == SC_FIELD_KVO && why.limit == 10000u);
    p = program(10000u, 1000u, 0u);
    p.occlusion_limit_mmhg = 2000u;
    CHECK(sc_load_program(&s, &p, &why) == SC_ERR_ABOVE_MAX);
    CHECK(why.field == SC_FIELD_OCCLUSION_LIMIT && why.limit == SC_OCCLUSION_MAX_MMHG);
    p = program(10000u, 1000u, 0u);
    p.hard_max_rate_ul_per_h = 5000u;
    CHECK(sc_load_program(&s, &p, &why) == SC_ERR_ABOVE_MAX);
    CHECK(why.field == SC_FIELD_RATE && why.limit == 5000u);
}

static void test_exact_accounting_one_hour(void)
{
    sc_state_t s;
    sc_output_t out;
    uint32_t i;
    uint32_t total = 0u;
    sc_inputs_t in;
    start_running(&s, 10000u, 9999000u, 0u);
    for (i = 0u; i < 3600u; i++) {
        in = inputs(20, 0u, 0u, i);
        sc_run(&s, &in, 100u, &out);
        total += out.steps;
    }
    /* 10 mL/h for 1 h = 10 mL = 640000 usteps of 15.625 nL */
    CHECK(total == 640000u);
    CHECK(s.delivered_steps == 640000u);
    CHECK(out.faults == 0u);
}

static void test_vtbi_then_kvo(void)
{
    sc_state_t s;
    sc_output_t out;
    uint32_t i;
    sc_inputs_t in;
    start_running(&s, 100000u, 1000u, 1000u); /* 1 mL at 100 mL/h, KVO 1 mL/h */
    for (i = 0u; i < 60u; i++) {
        in = inputs(20, 0u, 0u, i);
        sc_run(&s, &in, 100u, &out);
    }
    CHECK(s.delivered_steps == 64000u); /* exactly 1 mL, never more */
    CHECK(s.phase == SC_PHASE_KVO);
    CHECK(s.kvo_steps > 0u);
}

static void test_occlusion_latches(void)
{
    sc_state_t s;
    sc_output_t out;
    sc_inputs_t in;
    start_running(&s, 10000u, 100000u, 0u);
    in = inputs(301, 0u, 0u, 1u);
    /* one sample per call, 10 ticks apart: over the limit for 50 ticks = 6 samples */
    for (uint32_t i = 0u; i < 5u; i++) {
        sc_run(&s, &in, 10u, &out);
        CHECK(out.faults == 0u);
    }
    sc_run(&s, &in, 10u, &out);
    CHECK(out.faults == SC_FAULT_OCCLUSION_DOWN);
    CHECK(out.phase == SC_PHASE_PAUSED && out.fault_tick == 1u && out.steps == 0u);
    CHECK(sc_take_backoff(&s) > 0u && sc_take_backoff(&s) == 0u);
    CHECK(sc_acknowledge(&s, &in) == SC_FAULT_OCCLUSION_DOWN);
    in = inputs(10, 0u, 0u, 2u);
    sc_run(&s, &in, 50u, &out);
    CHECK(out.steps == 0u && out.faults == SC_FAULT_OCCLUSION_DOWN);
    CHECK(sc_acknowledge(&s, &in) == 0u);
    CHECK(s.phase == SC_PHASE_PAUSED);
    CHECK(sc_start(&s) == SC_OK);
}

/* SR-CORE-3 trend: a line that fills at its compliance alarms below the threshold,
 * and decides a back-off of what filled it (SR-CORE-4). */
static void test_occlusion_trend_and_backoff(void)
{
    sc_state_t s;
    sc_output_t out;
    sc_inputs_t in;
    uint32_t t;
    uint32_t pumped_at_clamp = 0u;
    int32_t mmhg = 20;
    out.faults = 0u;
    start_running(&s, 10000u, 1000000u, 0u); /* 10 mL/h: 177.8 steps/s, a turn in 18 s */
    for (t = 0u; t < 600u && out.faults == 0u; t++) {
        /* 1 s samples; clamped after 120 s: +0.75 mmHg per uL (64 steps per uL) */
        if (t == 120u) {
            pumped_at_clamp = s.pumped_steps;
        }
        if (t >= 120u) {
            mmhg = 20 + (int32_t)((s.pumped_steps - pumped_at_clamp) * 3u / 256u);
        }
        in = inputs(mmhg, 0u, 0u, t);
        sc_run(&s, &in, 100u, &out);
    }
    CHECK(out.faults == SC_FAULT_OCCLUSION_DOWN);
    CHECK(t > 120u && t < 160u && mmhg < 100); /* far below the 300 mmHg threshold */
    t = sc_take_backoff(&s);
    /* what went into the closed line, less the first rise (under 8 mmHg a turn) */
    CHECK(t + 2u * SC_TREND_SEGMENT_STEPS >= s.pumped_steps - pumped_at_clamp);
    CHECK(t <= s.pumped_steps - pumped_at_clamp + SC_TREND_SEGMENT_STEPS);
    CHECK(s.watch.reversed_steps == t && sc_take_backoff(&s) == 0u);
}

/* SR-CORE-6: the encoder against the steps commanded. */
static void test_motion_check(void)
{
    sc_state_t s;
    sc_output_t out;
    sc_inputs_t in;
    sc_refusal_t why;
    uint32_t i;
    start_running(&s, 100000u, 1000000u, 0u);
    CHECK(sc_set_motion_check(&s, 3200u, &why) == SC_ERR_BUSY);
    sc_pause(&s);
    CHECK(sc_set_motion_check(&s, 99u, &why) == SC_ERR_BELOW_MIN &&
          why.field == SC_FIELD_USTEPS_PER_PULSE);
    CHECK(sc_set_motion_check(&s, 3200u, &why) == SC_OK);
    CHECK(sc_start(&s) == SC_OK);
    in = inputs(10, 0u, 0u, 0u);
    /* healthy: one pulse per 3200 steps */
    for (i = 0u; i < 60u; i++) {
        in.heartbeat = i;
        in.encoder_count = s.motor_steps / 3200u;
        sc_run(&s, &in, 100u, &out);
    }
    CHECK(out.faults == 0u);
    /* jammed: steps, no pulse: stall after two pulses' worth (3.6 s at 100 mL/h) */
    for (i = 60u; i < 70u && out.faults == 0u; i++) {
        in.heartbeat = i;
        sc_run(&s, &in, 100u, &out);
    }
    CHECK(out.faults == SC_FAULT_MOTION_STALL && out.phase == SC_PHASE_PAUSED);
    CHECK(sc_acknowledge(&s, &in) == 0u && sc_start(&s) == SC_OK);
    /* runaway while stopped: pulses with no steps */
    sc_pause(&s);
    sc_run(&s, &in, 1u, &out);
    in.encoder_count += 4u;
    sc_run(&s, &in, 1u, &out);
    CHECK(out.faults == SC_FAULT_MOTION_RUNAWAY);
    in.encoder_count += 1u;
    CHECK(sc_acknowledge(&s, &in) == SC_FAULT_MOTION_RUNAWAY); /* still turning */
    sc_run(&s, &in, 1u, &out);
    CHECK(sc_acknowledge(&s, &in) == SC_FAULT_MOTION_RUNAWAY); /* still for < 60 s */
    for (i = 0u; i < 59u; i++) {
        sc_run(&s, &in, 100u, &out);
    }
    CHECK(sc_acknowledge(&s, &in) == SC_FAULT_MOTION_RUNAWAY);
    sc_run(&s, &in, 100u, &out);
    CHECK(sc_acknowledge(&s, &in) == 0u); /* a minute without a pulse */
}

static void test_air_and_heartbeat(void)
{
    sc_state_t s;
    sc_output_t out;
    sc_inputs_t in;
    start_running(&s, 10000u, 100000u, 0u);
    in = inputs(10, 100000u, 1u, 1u);
    sc_run(&s, &in, 1u, &out);
    CHECK(out.faults == SC_FAULT_AIR_BUBBLE);
    start_running(&s, 10000u, 100000u, 0u);
    in = inputs(10, 0u, 0u, 5u);
    sc_run(&s, &in, 101u, &out);
    CHECK(out.faults == 0u);
    sc_run(&s, &in, 1u, &out);
    CHECK(out.faults == SC_FAULT_HEARTBEAT);
}

static void test_uninitialised_state_is_refused(void)
{
    sc_state_t s;
    sc_output_t out;
    sc_inputs_t in = inputs(0, 0u, 0u, 0u);
    sc_program_t p = program(10000u, 1000u, 0u);
    memset(&s, 0xA5, sizeof s);
    CHECK(sc_load_program(&s, &p, 0) == SC_ERR_STATE);
    CHECK(sc_start(&s) == SC_ERR_STATE);
    sc_run(&s, &in, 10u, &out);
    CHECK(out.steps == 0u && (out.faults & SC_FAULT_STATE) != 0u);
}

/* SR-CORE-2: the rolling-hour cap holds a PCA basal + boluses; lockout and count. */
static void test_pca_cap_and_lockout(void)
{
    sc_state_t s;
    sc_refusal_t why;
    sc_output_t out;
    sc_inputs_t in = inputs(20, 0u, 0u, 0u);
    sc_program_t p = program(1000u, 100000u, 0u);
    uint32_t t;
    uint32_t hour_start_steps;
    p.max_1h_ul = 3000u;
    p.bolus_ul = 1000u;
    p.bolus_rate_ul_per_h = 100000u;
    p.lockout_s = 600u;
    p.max_boluses_per_h = 2u;
    CHECK(sc_init(&s, 15625u, &why) == SC_OK);
    CHECK(sc_load_program(&s, &p, &why) == SC_OK);
    CHECK(sc_start(&s) == SC_OK);
    CHECK(sc_bolus(&s, SC_BOLUS_PATIENT, 0u) == SC_BOLUS_GRANTED);
    CHECK(sc_bolus(&s, SC_BOLUS_PATIENT, 0u) == SC_BOLUS_DENIED_IN_PROGRESS);
    hour_start_steps = s.delivered_steps;
    for (t = 0u; t < 3600u; t++) { /* one hour, fed every second, a press every 100 s */
        in.heartbeat = t;
        sc_run(&s, &in, 100u, &out);
        if (t % 100u == 99u) {
            (void)sc_bolus(&s, SC_BOLUS_PATIENT, 0u);
        }
    }
    CHECK(s.delivered_steps - hour_start_steps <= 3000u * 64u);   /* the cap, in steps */
    CHECK(s.patient_boluses == 2u);                               /* the hourly count */
    CHECK(s.boluses_denied > 30u);
    CHECK(sc_window_steps(&s, 0u) <= 3000u * 64u);
    p.bolus_ul = 60000u; /* above the bolus maximum: refused, the program stays */
    sc_pause(&s);
    CHECK(sc_load_program(&s, &p, &why) == SC_ERR_ABOVE_MAX && why.field == SC_FIELD_BOLUS);
    CHECK(s.program.bolus_ul == 1000u);
}

/* Bounded random walk over the API: the sanitizers watch every step. */
static void test_random_walk(void)
{
    sc_state_t s;
    sc_output_t out;
    sc_refusal_t why;
    uint32_t x = 12345u;
    uint32_t i;
    CHECK(sc_init(&s, 15625u, &why) == SC_OK);
    for (i = 0u; i < 200000u; i++) {
        uint32_t op;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        op = x % 14u;
        if (op == 0u) {
            sc_program_t p = program((x >> 8) % 600000u, (x >> 4) % 10000000u, (x >> 12) % 25000u);
            p.occlusion_limit_mmhg = (x >> 3) % 1100u;
            p.bubble_limit_ul = (x >> 5) % 600u;
            if ((x & 0x10u) != 0u) {
                p.max_1h_ul = (x >> 6) % 600000u;
                p.max_4h_ul = (x >> 9) % 2100000u;
                p.bolus_ul = (x >> 11) % 60000u;
                p.bolus_rate_ul_per_h = ((x >> 13) % 6000u) * 100u;
                p.lockout_s = (x >> 15) % 15000u;
                p.max_boluses_per_h = (x >> 19) % 70u;
                p.flags = (x >> 25) % 3u;
            }
            (void)sc_load_program(&s, &p, &why);
        } else if (op == 8u) {
            (void)sc_set_rate(&s, ((x >> 8) % 6000u) * 100u, (x >> 4) % 100000u, &why);
        } else if (op == 9u) {
            (void)sc_bolus(&s, (x >> 5) % 3u, (x >> 7) % 70000u);
        } else if (op == 10u) {
            CHECK(sc_window_steps(&s, 0u) <= sc_window_steps(&s, 1u));
        } else if (op == 11u) {
            (void)sc_set_motion_check(&s, (x >> 9) % 3400u, &why);
        } else if (op == 12u) {
            uint32_t back = sc_take_backoff(&s);
            CHECK(back <= s.watch.backoff_max_steps);
            sc_backoff_done(&s, back);
        } else if (op == 13u) {
            sc_inputs_t in = inputs((int32_t)(x >> 1) - 1073741824, 0u, 0u, x >> 30);
            in.encoder_count = x >> 3;
            (void)sc_sample(&s, &in);
        } else if (op == 1u) {
            (void)sc_start(&s);
        } else if (op == 2u) {
            sc_pause(&s);
        } else if (op == 3u) {
            sc_inputs_t in = inputs((int32_t)(x >> 1) - 1073741824, x, x & 1u, x >> 30);
            in.encoder_count = x >> 4;
            (void)sc_acknowledge(&s, &in);
        } else {
            sc_inputs_t in = inputs((int32_t)((x >> 20) % 1200u), (x & 0x100u) ? (x >> 9) : 0u,
                                    (x >> 2) & 1u, (x >> 28));
            sc_run(&s, &in, (x >> 7) % 300u, &out);
            CHECK(s.delivered_steps <= s.vtbi_steps);
            CHECK(s.acc < s.step_cost);
        }
    }
}

int main(void)
{
    test_refusals_name_field_and_limit();
    test_exact_accounting_one_hour();
    test_vtbi_then_kvo();
    test_occlusion_latches();
    test_occlusion_trend_and_backoff();
    test_motion_check();
    test_air_and_heartbeat();
    test_uninitialised_state_is_refused();
    test_pca_cap_and_lockout();
    test_random_walk();
    printf("C core unit tests: %u checks passed, %u failed\n", passed, failed);
    return failed == 0u ? 0 : 1;
}
