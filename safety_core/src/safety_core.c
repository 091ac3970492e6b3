/*
 * safety_core.c -- channel A: dose loop and hard interlocks (SR-CORE-1,3,5,7,8).
 *
 * Owns: program validation against the device's absolute limits and the
 * drug-library hard limits, rate -> microstep conversion with exact volume
 * accounting, VTBI stop and KVO, downstream-occlusion, air and heartbeat
 * stops, and fault latching.  Never does I/O, never reads a clock: time is
 * the tick count, inputs come in, the step count goes out.
 *
 * Volume accounting: the rate in uL/h integrated over one tick of SC_TICK_MS
 * is rate * SC_TICK_MS * 5 units of 1/18 pL (1 uL/h for 1 ms = 5/18 pL), and
 * one microstep costs ustep_volume_pl * 18 units.  Both are exact integers, so
 * a Bresenham accumulator (whole steps + remainder per tick, computed once at
 * program load) delivers the exact integral of the rate with no drift and no
 * division in the tick.
 *
 * Must never: allocate, recurse, use floating point, divide in the tick path,
 * loop without a constant bound, or let a counter wrap.
 */
#include "safety_core.h"

#define SC_MAGIC 0x53434f52u /* "SCOR" */
#define SC_UNITS_PER_UL_PER_H_MS 5u
#define SC_UNITS_PER_PL 18u
#define SC_U32_MAX 0xFFFFFFFFu
#define SC_HEARTBEAT_TIMEOUT_TICKS (SC_HEARTBEAT_TIMEOUT_MS / SC_TICK_MS)

static uint32_t sat_add_u32(uint32_t a, uint32_t b)
{
    uint32_t r = a + b;
    return (r < a) ? SC_U32_MAX : r;
}

static uint32_t sat_inc_u32(uint32_t a)
{
    return (a == SC_U32_MAX) ? a : a + 1u;
}

/* Restoring division, 32 bounded iterations: armv6m has no divide
 * instruction and the core links no runtime library.  d must be non-zero. */
static uint32_t divmod_u32(uint32_t n, uint32_t d, uint32_t *rem)
{
    uint32_t q = 0u;
    uint32_t r = 0u;
    uint32_t i;
    for (i = 0u; i < 32u; i++) {
        r = (r << 1) | (n >> 31);
        n <<= 1;
        q <<= 1;
        if (r >= d) {
            r -= d;
            q |= 1u;
        }
    }
    *rem = r;
    return q;
}

/* floor(vtbi_ul * 1e6 / ustep_volume_pl) without 64-bit arithmetic:
 * a*10^6/c = (a/c)*10^6 + ((a%c)*10^3/c)*10^3 + (((a%c)*10^3)%c)*10^3/c,
 * every partial product below 2^32 for a <= SC_VTBI_MAX_UL, c <= 100000.
 * Saturates (cannot happen within the validated limits). */
static uint32_t vtbi_to_steps(uint32_t vtbi_ul, uint32_t pl)
{
    uint32_t r1;
    uint32_t r2;
    uint32_t r3;
    uint32_t q1 = divmod_u32(vtbi_ul, pl, &r1);
    uint32_t q2 = divmod_u32(r1 * 1000u, pl, &r2);
    uint32_t q3 = divmod_u32(r2 * 1000u, pl, &r3);
    uint32_t total;
    (void)r3;
    if (q1 > 4294u) {
        return SC_U32_MAX;
    }
    total = sat_add_u32(q1 * 1000000u, q2 * 1000u);
    return sat_add_u32(total, q3);
}

static uint32_t refuse(sc_refusal_t *why, uint32_t code, uint32_t field, uint32_t limit)
{
    if (why != 0) {
        why->code = code;
        why->field = field;
        why->limit = limit;
    }
    return code;
}

static uint32_t check_range(sc_refusal_t *why, uint32_t field, uint32_t value,
                            uint32_t min, uint32_t max)
{
    if (value < min) {
        return refuse(why, SC_ERR_BELOW_MIN, field, min);
    }
    if (value > max) {
        return refuse(why, SC_ERR_ABOVE_MAX, field, max);
    }
    return SC_OK;
}

static uint32_t validate_program(const sc_program_t *p, sc_refusal_t *why)
{
    uint32_t rc;
    uint32_t rem;
    uint32_t rate_min = SC_RATE_MIN_UL_PER_H;
    uint32_t rate_max = SC_RATE_MAX_UL_PER_H;

    /* library hard limits must themselves be inside the device limits */
    if (p->hard_min_rate_ul_per_h != 0u) {
        rc = check_range(why, SC_FIELD_HARD_MIN_RATE, p->hard_min_rate_ul_per_h,
                         SC_RATE_MIN_UL_PER_H, SC_RATE_MAX_UL_PER_H);
        if (rc != SC_OK) {
            return rc;
        }
        rate_min = p->hard_min_rate_ul_per_h;
    }
    if (p->hard_max_rate_ul_per_h != 0u) {
        rc = check_range(why, SC_FIELD_HARD_MAX_RATE, p->hard_max_rate_ul_per_h,
                         rate_min, SC_RATE_MAX_UL_PER_H);
        if (rc != SC_OK) {
            return rc;
        }
        rate_max = p->hard_max_rate_ul_per_h;
    }
    rc = check_range(why, SC_FIELD_RATE, p->rate_ul_per_h, rate_min, rate_max);
    if (rc != SC_OK) {
        return rc;
    }
    (void)divmod_u32(p->rate_ul_per_h, SC_RATE_STEP_UL_PER_H, &rem);
    if (rem != 0u) {
        return refuse(why, SC_ERR_NOT_MULTIPLE, SC_FIELD_RATE, SC_RATE_STEP_UL_PER_H);
    }
    rc = check_range(why, SC_FIELD_VTBI, p->vtbi_ul, SC_VTBI_MIN_UL, SC_VTBI_MAX_UL);
    if (rc != SC_OK) {
        return rc;
    }
    if (p->kvo_ul_per_h != 0u) {
        uint32_t kvo_max = (p->rate_ul_per_h < SC_KVO_MAX_UL_PER_H) ? p->rate_ul_per_h
                                                                      : SC_KVO_MAX_UL_PER_H;
        rc = check_range(why, SC_FIELD_KVO, p->kvo_ul_per_h, SC_KVO_MIN_UL_PER_H, kvo_max);
        if (rc != SC_OK) {
            return rc;
        }
        (void)divmod_u32(p->kvo_ul_per_h, SC_RATE_STEP_UL_PER_H, &rem);
        if (rem != 0u) {
            return refuse(why, SC_ERR_NOT_MULTIPLE, SC_FIELD_KVO, SC_RATE_STEP_UL_PER_H);
        }
    }
    rc = check_range(why, SC_FIELD_OCCLUSION_LIMIT, p->occlusion_limit_mmhg,
                     SC_OCCLUSION_MIN_MMHG, SC_OCCLUSION_MAX_MMHG);
    if (rc != SC_OK) {
        return rc;
    }
    return check_range(why, SC_FIELD_BUBBLE_LIMIT, p->bubble_limit_ul, SC_BUBBLE_MIN_UL,
                       SC_BUBBLE_MAX_UL);
}

uint32_t sc_init(sc_state_t *s, uint32_t ustep_volume_pl, sc_refusal_t *why)
{
    uint8_t *bytes = (uint8_t *)s;
    uint32_t i;
    uint32_t rc = check_range(why, SC_FIELD_USTEP_VOLUME, ustep_volume_pl,
                              SC_USTEP_VOLUME_MIN_PL, SC_USTEP_VOLUME_MAX_PL);
    if (rc != SC_OK) {
        s->magic = 0u;
        return rc;
    }
    for (i = 0u; i < (uint32_t)sizeof(sc_state_t); i++) {
        bytes[i] = 0u;
    }
    s->magic = SC_MAGIC;
    s->ustep_volume_pl = ustep_volume_pl;
    s->step_cost = ustep_volume_pl * SC_UNITS_PER_PL;
    s->phase = SC_PHASE_IDLE;
    (void)refuse(why, SC_OK, SC_FIELD_NONE, 0u);
    return SC_OK;
}

uint32_t sc_load_program(sc_state_t *s, const sc_program_t *p, sc_refusal_t *why)
{
    uint32_t rc;
    if (s->magic != SC_MAGIC) {
        return refuse(why, SC_ERR_STATE, SC_FIELD_NONE, 0u);
    }
    if (s->phase == SC_PHASE_RUNNING || s->phase == SC_PHASE_KVO) {
        return refuse(why, SC_ERR_BUSY, SC_FIELD_NONE, 0u);
    }
    rc = validate_program(p, why);
    if (rc != SC_OK) {
        return rc; /* previous program stays in force */
    }
    /* field by field: a struct assignment may become a memcpy call */
    s->program.rate_ul_per_h = p->rate_ul_per_h;
    s->program.vtbi_ul = p->vtbi_ul;
    s->program.kvo_ul_per_h = p->kvo_ul_per_h;
    s->program.hard_min_rate_ul_per_h = p->hard_min_rate_ul_per_h;
    s->program.hard_max_rate_ul_per_h = p->hard_max_rate_ul_per_h;
    s->program.occlusion_limit_mmhg = p->occlusion_limit_mmhg;
    s->program.bubble_limit_ul = p->bubble_limit_ul;
    s->rate_whole_steps = divmod_u32(p->rate_ul_per_h * SC_TICK_MS * SC_UNITS_PER_UL_PER_H_MS,
                                     s->step_cost, &s->rate_rem);
    s->kvo_whole_steps = divmod_u32(p->kvo_ul_per_h * SC_TICK_MS * SC_UNITS_PER_UL_PER_H_MS,
                                    s->step_cost, &s->kvo_rem);
    s->vtbi_steps = vtbi_to_steps(p->vtbi_ul, s->ustep_volume_pl);
    s->bubble_limit_nl = p->bubble_limit_ul * 1000u;
    s->acc = 0u;
    s->delivered_steps = 0u;
    s->kvo_steps = 0u;
    s->occlusion_ticks = 0u;
    s->phase = SC_PHASE_READY;
    (void)refuse(why, SC_OK, SC_FIELD_NONE, 0u);
    return SC_OK;
}

uint32_t sc_start(sc_state_t *s)
{
    if (s->magic != SC_MAGIC) {
        return SC_ERR_STATE;
    }
    if (s->phase == SC_PHASE_IDLE) {
        return SC_ERR_NO_PROGRAM;
    }
    if (s->faults != 0u) {
        return SC_ERR_FAULTED;
    }
    s->heartbeat_age_ticks = 0u;
    s->occlusion_ticks = 0u;
    if (s->delivered_steps < s->vtbi_steps) {
        s->phase = SC_PHASE_RUNNING;
    } else if (s->program.kvo_ul_per_h != 0u) {
        s->phase = SC_PHASE_KVO;
    } else {
        s->phase = SC_PHASE_COMPLETE;
    }
    return SC_OK;
}

void sc_pause(sc_state_t *s)
{
    if (s->magic == SC_MAGIC && (s->phase == SC_PHASE_RUNNING || s->phase == SC_PHASE_KVO ||
                                 s->phase == SC_PHASE_READY)) {
        s->phase = SC_PHASE_PAUSED;
    }
}

/* Rolling 15-minute air window: one bucket per minute. */
static void air_window_tick(sc_state_t *s, uint32_t air_nl)
{
    s->air_bucket_age_ticks++;
    if (s->air_bucket_age_ticks >= SC_AIR_BUCKET_TICKS) {
        s->air_bucket_age_ticks = 0u;
        s->air_bucket_index++;
        if (s->air_bucket_index >= SC_AIR_BUCKETS) {
            s->air_bucket_index = 0u;
        }
        s->air_window_nl -= s->air_bucket_nl[s->air_bucket_index];
        s->air_bucket_nl[s->air_bucket_index] = 0u;
    }
    if (air_nl != 0u) {
        s->air_bucket_nl[s->air_bucket_index] =
            sat_add_u32(s->air_bucket_nl[s->air_bucket_index], air_nl);
        s->air_window_nl = sat_add_u32(s->air_window_nl, air_nl);
    }
}

/* Sensor checks for one tick; returns the fault bits newly detected. */
static uint32_t detect_faults(sc_state_t *s, const sc_inputs_t *in, uint32_t air_nl,
                              uint32_t motor_active)
{
    uint32_t found = 0u;

    if (in->heartbeat != s->last_heartbeat) {
        s->last_heartbeat = in->heartbeat;
        s->heartbeat_age_ticks = 0u;
    } else {
        s->heartbeat_age_ticks = sat_inc_u32(s->heartbeat_age_ticks);
    }

    if (air_nl != 0u) {
        s->air_run_nl = sat_add_u32(s->air_run_nl, air_nl);
    } else if (in->air_present == 0u) {
        s->air_run_nl = 0u;
    }
    air_window_tick(s, air_nl);
    if (s->phase != SC_PHASE_IDLE) {
        if (s->air_run_nl >= s->bubble_limit_nl) {
            found |= SC_FAULT_AIR_BUBBLE;
        }
        if (s->air_window_nl > SC_AIR_CUMULATIVE_LIMIT_NL) {
            found |= SC_FAULT_AIR_CUMULATIVE;
        }
    }

    if (in->downstream_mmhg > (int32_t)s->program.occlusion_limit_mmhg) {
        s->occlusion_ticks = sat_inc_u32(s->occlusion_ticks);
    } else {
        s->occlusion_ticks = 0u;
    }
    if (motor_active != 0u) {
        if (s->occlusion_ticks >= SC_OCCLUSION_DEBOUNCE_TICKS) {
            found |= SC_FAULT_OCCLUSION_DOWN;
        }
        if (s->heartbeat_age_ticks > SC_HEARTBEAT_TIMEOUT_TICKS) {
            found |= SC_FAULT_HEARTBEAT;
        }
    }
    return found;
}

/* Steps for this tick in the current phase, with the VTBI clamp. */
static uint32_t schedule_steps(sc_state_t *s)
{
    uint32_t steps;
    if (s->phase == SC_PHASE_RUNNING) {
        uint32_t left = s->vtbi_steps - s->delivered_steps;
        steps = s->rate_whole_steps;
        s->acc += s->rate_rem;
        if (s->acc >= s->step_cost) {
            s->acc -= s->step_cost;
            steps++;
        }
        if (steps >= left) {
            steps = left; /* never more than the VTBI (SR-CORE-2) */
            s->phase = (s->program.kvo_ul_per_h != 0u) ? SC_PHASE_KVO : SC_PHASE_COMPLETE;
        }
        s->delivered_steps += steps;
        return steps;
    }
    if (s->phase == SC_PHASE_KVO) {
        steps = s->kvo_whole_steps;
        s->acc += s->kvo_rem;
        if (s->acc >= s->step_cost) {
            s->acc -= s->step_cost;
            steps++;
        }
        s->kvo_steps = sat_add_u32(s->kvo_steps, steps);
        return steps;
    }
    return 0u;
}

static uint32_t tick_once(sc_state_t *s, const sc_inputs_t *in, uint32_t air_nl)
{
    uint32_t motor_active = (s->phase == SC_PHASE_RUNNING || s->phase == SC_PHASE_KVO) ? 1u : 0u;
    uint32_t found;

    s->ticks = sat_inc_u32(s->ticks);
    found = detect_faults(s, in, air_nl, motor_active);
    if (found != 0u) {
        s->faults |= found;
        if (motor_active != 0u) {
            s->phase = SC_PHASE_PAUSED;
        }
    }
    if (s->faults != 0u) {
        return 0u;
    }
    return schedule_steps(s);
}

uint32_t sc_tick(sc_state_t *s, const sc_inputs_t *in, sc_output_t *out)
{
    sc_run(s, in, 1u, out);
    return out->steps;
}

void sc_run(sc_state_t *s, const sc_inputs_t *in, uint32_t n_ticks, sc_output_t *out)
{
    uint32_t i;
    uint32_t steps = 0u;
    uint32_t air_nl = in->air_nl;
    uint32_t faults_before;

    out->fault_tick = 0u;
    if (s->magic != SC_MAGIC) {
        s->faults |= SC_FAULT_STATE;
        out->steps = 0u;
        out->faults = s->faults;
        out->phase = SC_PHASE_IDLE;
        return;
    }
    faults_before = s->faults;
    for (i = 0u; i < n_ticks; i++) {
        steps = sat_add_u32(steps, tick_once(s, in, air_nl));
        air_nl = 0u;
        if (out->fault_tick == 0u && s->faults != faults_before) {
            out->fault_tick = i + 1u;
        }
    }
    out->steps = steps;
    out->faults = s->faults;
    out->phase = s->phase;
}

uint32_t sc_acknowledge(sc_state_t *s, const sc_inputs_t *in)
{
    if (s->magic != SC_MAGIC) {
        return SC_FAULT_STATE;
    }
    if ((s->faults & SC_FAULT_OCCLUSION_DOWN) != 0u &&
        in->downstream_mmhg <= (int32_t)s->program.occlusion_limit_mmhg) {
        s->faults &= ~SC_FAULT_OCCLUSION_DOWN;
        s->occlusion_ticks = 0u;
    }
    if ((s->faults & SC_FAULT_AIR_BUBBLE) != 0u && in->air_present == 0u) {
        s->faults &= ~SC_FAULT_AIR_BUBBLE;
        s->air_run_nl = 0u;
    }
    if ((s->faults & SC_FAULT_AIR_CUMULATIVE) != 0u && in->air_present == 0u) {
        /* the clinician has cleared the line: the window starts again */
        s->faults &= ~SC_FAULT_AIR_CUMULATIVE;
        for (uint32_t i = 0u; i < SC_AIR_BUCKETS; i++) {
            s->air_bucket_nl[i] = 0u;
        }
        s->air_window_nl = 0u;
    }
    /* the application is alive again: a new heartbeat now, or one seen recently */
    if ((s->faults & SC_FAULT_HEARTBEAT) != 0u &&
        (in->heartbeat != s->last_heartbeat ||
         s->heartbeat_age_ticks <= SC_HEARTBEAT_TIMEOUT_TICKS)) {
        s->faults &= ~SC_FAULT_HEARTBEAT;
        s->last_heartbeat = in->heartbeat;
        s->heartbeat_age_ticks = 0u;
    }
    return s->faults;
}
