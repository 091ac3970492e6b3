/*
 * safety_core.c -- channel A: dose loop and hard interlocks (SR-CORE-1,2,3,5,7,8).
 *
 * Owns: program validation against the device's absolute limits and the
 * drug-library hard limits, rate -> microstep conversion with exact volume
 * accounting, rate segments (profiles, tapers, intermittent doses), VTBI stop
 * and KVO, the rolling 1 h cap and 4 h maximum on everything pumped, PCA and
 * clinician boluses with lockout and hourly count (denials counted),
 * downstream-occlusion, air and heartbeat stops, and fault latching.
 *
 * Rolling windows: what the motor pumps forward (pumped_steps, a wrapping
 * sequence counter whose differences are exact) is binned in 5-minute buckets
 * when a bucket closes; a window is the current bucket plus the 12 (1 h) or 48
 * (4 h) full ones before it, so it looks back at least the whole hour and at
 * most 5 minutes more: a cap can hold delivery a little early, never late.
 * The tick itself only compares the steps with allow_steps (what the caps leave
 * for the current bucket), so a cap costs the tick a few instructions.  Never does I/O, never reads a clock: time is
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

/* the bindings read the state by 32-bit word (safety_core/constants.py STATE_WORDS) */
typedef char sc_state_words_check[(sizeof(sc_state_t) == SC_STATE_WORDS * 4u) ? 1 : -1];

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

/* a field that may be 0 (= not used) or else must lie in min..max */
static uint32_t check_optional(sc_refusal_t *why, uint32_t field, uint32_t value,
                               uint32_t min, uint32_t max)
{
    if (value == 0u) {
        return SC_OK;
    }
    return check_range(why, field, value, min, max);
}

static uint32_t check_multiple(sc_refusal_t *why, uint32_t field, uint32_t value)
{
    uint32_t rem;
    (void)divmod_u32(value, SC_RATE_STEP_UL_PER_H, &rem);
    if (rem != 0u) {
        return refuse(why, SC_ERR_NOT_MULTIPLE, field, SC_RATE_STEP_UL_PER_H);
    }
    return SC_OK;
}

/* A rate for program p (its hard limits and caps already validated): inside the
 * library hard limits (else the device's), on the 0.1 mL/h grid, and not above
 * what the rolling 1 h cap or a quarter of the 4 h maximum lets run for an hour. */
static uint32_t check_rate(const sc_program_t *p, uint32_t rate_ul_per_h, sc_refusal_t *why)
{
    uint32_t rc;
    uint32_t rate_min = (p->hard_min_rate_ul_per_h != 0u) ? p->hard_min_rate_ul_per_h
                                                          : SC_RATE_MIN_UL_PER_H;
    uint32_t rate_max = (p->hard_max_rate_ul_per_h != 0u) ? p->hard_max_rate_ul_per_h
                                                          : SC_RATE_MAX_UL_PER_H;
    rc = check_range(why, SC_FIELD_RATE, rate_ul_per_h, rate_min, rate_max);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_multiple(why, SC_FIELD_RATE, rate_ul_per_h);
    if (rc != SC_OK) {
        return rc;
    }
    if (p->max_1h_ul != 0u && rate_ul_per_h > p->max_1h_ul) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_RATE, p->max_1h_ul);
    }
    if (p->max_4h_ul != 0u && rate_ul_per_h > (p->max_4h_ul >> 2)) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_RATE, p->max_4h_ul >> 2);
    }
    return SC_OK;
}

/* PCA / clinician bolus fields (SR-TH-1): a bolus needs its rate and a lockout;
 * without a patient bolus, lockout and count must be 0; a bolus rate alone
 * allows clinician boluses; no bolus while priming. */
static uint32_t check_bolus(const sc_program_t *p, sc_refusal_t *why)
{
    uint32_t rc;
    uint32_t prime = p->flags & SC_FLAG_PRIME;
    if (prime != 0u && p->bolus_rate_ul_per_h != 0u) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_BOLUS_RATE, 0u);
    }
    rc = check_optional(why, SC_FIELD_BOLUS_RATE, p->bolus_rate_ul_per_h, SC_RATE_MIN_UL_PER_H,
                        SC_RATE_MAX_UL_PER_H);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_multiple(why, SC_FIELD_BOLUS_RATE, p->bolus_rate_ul_per_h);
    if (rc != SC_OK) {
        return rc;
    }
    /* a bolus runs on top of the basal: together never above the device maximum */
    if (p->bolus_rate_ul_per_h > SC_RATE_MAX_UL_PER_H - p->rate_ul_per_h) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_BOLUS_RATE,
                      SC_RATE_MAX_UL_PER_H - p->rate_ul_per_h);
    }
    if (p->bolus_ul == 0u) {
        rc = check_range(why, SC_FIELD_LOCKOUT, p->lockout_s, 0u, 0u);
        if (rc != SC_OK) {
            return rc;
        }
        return check_range(why, SC_FIELD_MAX_BOLUSES, p->max_boluses_per_h, 0u, 0u);
    }
    rc = check_range(why, SC_FIELD_BOLUS, p->bolus_ul, SC_BOLUS_MIN_UL, SC_BOLUS_MAX_UL);
    if (rc != SC_OK) {
        return rc;
    }
    if (p->max_1h_ul != 0u && p->bolus_ul > p->max_1h_ul) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_BOLUS, p->max_1h_ul);
    }
    if (p->max_4h_ul != 0u && p->bolus_ul > p->max_4h_ul) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_BOLUS, p->max_4h_ul);
    }
    rc = check_range(why, SC_FIELD_BOLUS_RATE, p->bolus_rate_ul_per_h, SC_RATE_MIN_UL_PER_H,
                     SC_RATE_MAX_UL_PER_H);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_range(why, SC_FIELD_LOCKOUT, p->lockout_s, SC_LOCKOUT_MIN_S, SC_LOCKOUT_MAX_S);
    if (rc != SC_OK) {
        return rc;
    }
    return check_range(why, SC_FIELD_MAX_BOLUSES, p->max_boluses_per_h, 0u,
                       SC_MAX_BOLUSES_PER_H_MAX);
}

static uint32_t validate_program(const sc_program_t *p, sc_refusal_t *why)
{
    uint32_t rc;
    uint32_t prime = p->flags & SC_FLAG_PRIME;

    rc = check_range(why, SC_FIELD_FLAGS, p->flags, 0u, SC_FLAG_PRIME);
    if (rc != SC_OK) {
        return rc;
    }
    /* library hard limits must themselves be inside the device limits */
    rc = check_optional(why, SC_FIELD_HARD_MIN_RATE, p->hard_min_rate_ul_per_h,
                        SC_RATE_MIN_UL_PER_H, SC_RATE_MAX_UL_PER_H);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_optional(why, SC_FIELD_HARD_MAX_RATE, p->hard_max_rate_ul_per_h,
                        (p->hard_min_rate_ul_per_h != 0u) ? p->hard_min_rate_ul_per_h
                                                          : SC_RATE_MIN_UL_PER_H,
                        SC_RATE_MAX_UL_PER_H);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_optional(why, SC_FIELD_MAX_1H, p->max_1h_ul, SC_VTBI_MIN_UL, SC_MAX_1H_MAX_UL);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_optional(why, SC_FIELD_MAX_4H, p->max_4h_ul, SC_VTBI_MIN_UL, SC_MAX_4H_MAX_UL);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_rate(p, p->rate_ul_per_h, why);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_range(why, SC_FIELD_VTBI, p->vtbi_ul, SC_VTBI_MIN_UL,
                     (prime != 0u) ? SC_PRIME_MAX_UL : SC_VTBI_MAX_UL);
    if (rc != SC_OK) {
        return rc;
    }
    if (p->kvo_ul_per_h != 0u) {
        uint32_t kvo_max = (p->rate_ul_per_h < SC_KVO_MAX_UL_PER_H) ? p->rate_ul_per_h
                                                                      : SC_KVO_MAX_UL_PER_H;
        if (prime != 0u) {
            kvo_max = 0u; /* a prime ends stopped */
        }
        rc = check_range(why, SC_FIELD_KVO, p->kvo_ul_per_h, SC_KVO_MIN_UL_PER_H, kvo_max);
        if (rc != SC_OK) {
            return rc;
        }
        rc = check_multiple(why, SC_FIELD_KVO, p->kvo_ul_per_h);
        if (rc != SC_OK) {
            return rc;
        }
    }
    rc = check_range(why, SC_FIELD_OCCLUSION_LIMIT, p->occlusion_limit_mmhg,
                     SC_OCCLUSION_MIN_MMHG, SC_OCCLUSION_MAX_MMHG);
    if (rc != SC_OK) {
        return rc;
    }
    rc = check_range(why, SC_FIELD_BUBBLE_LIMIT, p->bubble_limit_ul, SC_BUBBLE_MIN_UL,
                     SC_BUBBLE_MAX_UL);
    if (rc != SC_OK) {
        return rc;
    }
    if (prime != 0u && p->bolus_ul != 0u) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_BOLUS, 0u);
    }
    return check_bolus(p, why);
}

/* Microsteps per tick at a rate: whole steps and the Bresenham remainder. */
static uint32_t rate_increments(const sc_state_t *s, uint32_t rate_ul_per_h, uint32_t *rem)
{
    return divmod_u32(rate_ul_per_h * SC_TICK_MS * SC_UNITS_PER_UL_PER_H_MS, s->step_cost, rem);
}

/* a cap in uL -> steps, 0 (none) -> U32_MAX */
static uint32_t cap_steps_of(uint32_t cap_ul, uint32_t pl)
{
    return (cap_ul == 0u) ? SC_U32_MAX : vtbi_to_steps(cap_ul, pl);
}

/* what a cap in steps leaves after `used` steps */
static uint32_t cap_left(uint32_t cap, uint32_t used)
{
    return (cap > used) ? cap - used : 0u;
}

uint32_t sc_window_steps(const sc_state_t *s, uint32_t hours4)
{
    uint32_t current = s->pumped_steps - s->win_base_steps; /* wrapping difference: exact */
    /* bounded by what the motor pumps in 4 h 5 min (< 2^29 steps): no wrap */
    return ((hours4 != 0u) ? s->win_4h_steps : s->win_1h_steps) + current;
}

/* steps the caps leave in the current bucket (the sums are bounded: no wrap) */
static void window_allow(sc_state_t *s)
{
    uint32_t current = s->pumped_steps - s->win_base_steps;
    uint32_t a1 = cap_left(s->max_1h_steps, s->win_1h_steps + current);
    uint32_t a4 = cap_left(s->max_4h_steps, s->win_4h_steps + current);
    s->allow_steps = (a1 < a4) ? a1 : a4;
}

/* The current 5-minute bucket closes, in three steps on three ticks so that no
 * tick does all of it (PT-1).  Each step leaves the sums at or above the truth
 * and allow_steps at or below it, so a bolus asked for in between, or a tick,
 * can only be held earlier, never later:
 *   1. the closing bucket is stored and added to the 1 h and 4 h sums, and the
 *      next bucket starts counting (over-counts: nothing has left the sums yet);
 *   2. the bucket 12 back leaves the 1 h sums, the oldest (48 back) leaves the
 *      4 h sum and is cleared for reuse, the index moves on;
 *   3. allow_steps is recomputed from the new sums (it only grows here).
 * Runs once per SC_WINDOW_BUCKET_TICKS (the first after SC_WINDOW_FIRST_ROLL_TICKS);
 * every sum is bounded by what the motor can pump in 4 h 5 min at 500 mL/h (basal and
 * bolus together: < 2^29 steps at the smallest calibration): no wrap. */
static void window_roll(sc_state_t *s)
{
    uint32_t i = s->win_index;
    uint32_t stage = s->win_age_ticks - SC_WINDOW_BUCKET_TICKS;
    if (stage == 0u) {
        uint32_t steps = s->pumped_steps - s->win_base_steps;
        uint32_t boluses = s->patient_boluses - s->win_base_boluses;
        s->win_steps[i] = steps;
        s->win_boluses[i] = boluses;
        s->win_1h_steps += steps;
        s->win_4h_steps += steps;
        s->win_1h_boluses += boluses;
        s->win_base_steps = s->pumped_steps;
        s->win_base_boluses = s->patient_boluses;
    } else if (stage == 1u) {
        uint32_t gone = (i >= SC_WINDOW_1H_BUCKETS) ? i - SC_WINDOW_1H_BUCKETS
                                                    : i + SC_WINDOW_BUCKETS - SC_WINDOW_1H_BUCKETS;
        uint32_t oldest = (i + 1u < SC_WINDOW_BUCKETS) ? i + 1u : 0u;
        s->win_1h_steps -= s->win_steps[gone];
        s->win_1h_boluses -= s->win_boluses[gone];
        s->win_4h_steps -= s->win_steps[oldest];
        s->win_steps[oldest] = 0u;
        s->win_boluses[oldest] = 0u;
        s->win_index = oldest;
    } else {
        window_allow(s);
        s->win_age_ticks = 2u; /* the new bucket opened two ticks ago, at stage 1 */
    }
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
    s->max_1h_steps = SC_U32_MAX;
    s->max_4h_steps = SC_U32_MAX;
    s->allow_steps = SC_U32_MAX;
    s->window_mask = SC_U32_MAX;
    s->win_age_ticks = SC_WINDOW_BUCKET_TICKS - SC_WINDOW_FIRST_ROLL_TICKS;
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
    s->occlusion_stop_mmhg = p->occlusion_limit_mmhg;
    s->program.bubble_limit_ul = p->bubble_limit_ul;
    if ((s->program.flags & SC_FLAG_PRIME) != 0u) {
        s->air_run_nl = 0u; /* the prime's air never entered the window (air_window_tick) */
    }
    s->program.max_1h_ul = p->max_1h_ul;
    s->program.max_4h_ul = p->max_4h_ul;
    s->program.bolus_ul = p->bolus_ul;
    s->program.bolus_rate_ul_per_h = p->bolus_rate_ul_per_h;
    s->program.lockout_s = p->lockout_s;
    s->program.max_boluses_per_h = p->max_boluses_per_h;
    s->program.flags = p->flags;
    s->rate_whole_steps = rate_increments(s, p->rate_ul_per_h, &s->rate_rem);
    s->kvo_whole_steps = rate_increments(s, p->kvo_ul_per_h, &s->kvo_rem);
    s->bolus_whole_steps = rate_increments(s, p->bolus_rate_ul_per_h, &s->bolus_rem);
    s->vtbi_steps = vtbi_to_steps(p->vtbi_ul, s->ustep_volume_pl);
    s->limit_steps = s->vtbi_steps;
    s->segment_held = 0u;
    s->bolus_steps = (p->bolus_ul == 0u) ? 0u : vtbi_to_steps(p->bolus_ul, s->ustep_volume_pl);
    s->bolus_left_steps = 0u;
    s->bolus_acc = 0u;
    s->lockout_ticks = p->lockout_s * SC_TICKS_PER_S;
    s->bubble_limit_nl = p->bubble_limit_ul * 1000u;
    s->acc = 0u;
    s->delivered_steps = 0u;
    s->kvo_steps = 0u;
    s->occlusion_ticks = 0u;
    /* the windows keep what was pumped before: a new program never resets a cap */
    s->max_1h_steps = cap_steps_of(p->max_1h_ul, s->ustep_volume_pl);
    s->max_4h_steps = cap_steps_of(p->max_4h_ul, s->ustep_volume_pl);
    window_allow(s);
    s->window_mask = ((p->flags & SC_FLAG_PRIME) != 0u) ? 0u : SC_U32_MAX;
    s->air_armed = ((p->flags & SC_FLAG_PRIME) != 0u) ? 0u : 1u;
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
        s->bolus_left_steps = 0u; /* a stop cancels the rest of a bolus */
    }
}

uint32_t sc_set_rate(sc_state_t *s, uint32_t rate_ul_per_h, uint32_t until_ul,
                     sc_refusal_t *why)
{
    uint32_t rc;
    uint32_t limit;
    if (s->magic != SC_MAGIC) {
        return refuse(why, SC_ERR_STATE, SC_FIELD_NONE, 0u);
    }
    if (s->phase == SC_PHASE_IDLE) {
        return refuse(why, SC_ERR_NO_PROGRAM, SC_FIELD_NONE, 0u);
    }
    if (s->phase == SC_PHASE_KVO || s->phase == SC_PHASE_COMPLETE) {
        return refuse(why, SC_ERR_BUSY, SC_FIELD_NONE, 0u);
    }
    rc = check_rate(&s->program, rate_ul_per_h, why);
    if (rc != SC_OK) {
        return rc;
    }
    if (s->program.kvo_ul_per_h > rate_ul_per_h) {
        return refuse(why, SC_ERR_BELOW_MIN, SC_FIELD_RATE, s->program.kvo_ul_per_h);
    }
    if (rate_ul_per_h > SC_RATE_MAX_UL_PER_H - s->program.bolus_rate_ul_per_h) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_RATE,
                      SC_RATE_MAX_UL_PER_H - s->program.bolus_rate_ul_per_h);
    }
    if (until_ul > s->program.vtbi_ul) {
        return refuse(why, SC_ERR_ABOVE_MAX, SC_FIELD_SEGMENT_END, s->program.vtbi_ul);
    }
    limit = (until_ul == 0u) ? s->vtbi_steps : vtbi_to_steps(until_ul, s->ustep_volume_pl);
    if (limit <= s->delivered_steps) {
        return refuse(why, SC_ERR_BELOW_MIN, SC_FIELD_SEGMENT_END, until_ul);
    }
    s->program.rate_ul_per_h = rate_ul_per_h;
    s->rate_whole_steps = rate_increments(s, rate_ul_per_h, &s->rate_rem);
    s->limit_steps = limit;
    s->segment_held = 0u;
    (void)refuse(why, SC_OK, SC_FIELD_NONE, 0u);
    return SC_OK;
}

uint32_t sc_restore_history(sc_state_t *s, uint32_t ul_1h, uint32_t ul_4h,
                            uint32_t boluses_1h)
{
    uint32_t steps_1h;
    uint32_t steps_4h;
    if (s->magic != SC_MAGIC) {
        return SC_ERR_STATE;
    }
    if (s->phase != SC_PHASE_READY) {
        return SC_ERR_BUSY;
    }
    if (ul_1h > SC_MAX_4H_MAX_UL || ul_4h > SC_MAX_4H_MAX_UL ||
        boluses_1h > SC_MAX_BOLUSES_PER_H_MAX) {
        return SC_ERR_ABOVE_MAX;
    }
    steps_1h = vtbi_to_steps(ul_1h, s->ustep_volume_pl);
    steps_4h = vtbi_to_steps(ul_4h, s->ustep_volume_pl);
    /* the last hour joins the current bucket: counted for the next 60..65 min (1 h)
     * and 240..245 min (4 h) */
    s->win_base_steps -= steps_1h;
    s->win_base_boluses -= boluses_1h;
    if (steps_4h > steps_1h) {
        /* what was given 1..4 h ago: into the bucket 13 back, in the 4 h sums only,
         * counted for 175..180 more minutes */
        uint32_t i = s->win_index;
        uint32_t j = (i >= 13u) ? i - 13u : i + SC_WINDOW_BUCKETS - 13u;
        s->win_steps[j] += steps_4h - steps_1h;
        s->win_4h_steps += steps_4h - steps_1h;
    }
    /* a full lockout from now: it counts as a bolus for the lockout, not the hour */
    s->last_bolus_tick = s->ticks;
    s->patient_boluses++;
    s->win_base_boluses++;
    window_allow(s);
    return SC_OK;
}

static uint32_t deny(sc_state_t *s, uint32_t code)
{
    s->boluses_denied = sat_inc_u32(s->boluses_denied);
    s->last_denial = code;
    return code;
}

uint32_t sc_bolus(sc_state_t *s, uint32_t kind, uint32_t amount_ul)
{
    uint32_t steps;
    if (s->magic != SC_MAGIC) {
        return SC_BOLUS_DENIED_NOT_RUNNING;
    }
    if (s->phase != SC_PHASE_RUNNING || s->segment_held != 0u) {
        return deny(s, SC_BOLUS_DENIED_NOT_RUNNING);
    }
    if (s->bolus_left_steps != 0u) {
        return deny(s, SC_BOLUS_DENIED_IN_PROGRESS);
    }
    if (kind == SC_BOLUS_PATIENT) {
        if (s->program.bolus_ul == 0u) {
            return deny(s, SC_BOLUS_DENIED_NO_PCA);
        }
        if (s->patient_boluses != 0u && s->ticks - s->last_bolus_tick < s->lockout_ticks) {
            return deny(s, SC_BOLUS_DENIED_LOCKOUT);
        }
        if (s->program.max_boluses_per_h != 0u &&
            s->win_1h_boluses + (s->patient_boluses - s->win_base_boluses) >=
                s->program.max_boluses_per_h) {
            return deny(s, SC_BOLUS_DENIED_COUNT);
        }
        steps = s->bolus_steps;
    } else {
        if (s->program.bolus_rate_ul_per_h == 0u || kind != SC_BOLUS_CLINICIAN) {
            return deny(s, SC_BOLUS_DENIED_NO_PCA);
        }
        if (amount_ul < SC_BOLUS_MIN_UL || amount_ul > SC_BOLUS_MAX_UL) {
            return deny(s, SC_BOLUS_DENIED_SIZE);
        }
        steps = vtbi_to_steps(amount_ul, s->ustep_volume_pl);
    }
    if (steps > cap_left(s->max_1h_steps, sc_window_steps(s, 0u))) {
        return deny(s, SC_BOLUS_DENIED_1H);
    }
    if (steps > cap_left(s->max_4h_steps, sc_window_steps(s, 1u))) {
        return deny(s, SC_BOLUS_DENIED_4H);
    }
    s->bolus_left_steps = steps;
    s->bolus_acc = 0u;
    if (kind == SC_BOLUS_PATIENT) {
        s->last_bolus_tick = s->ticks;
        s->patient_boluses++; /* a sequence counter: wraps, differences stay exact */
    } else {
        s->clinician_boluses = sat_inc_u32(s->clinician_boluses);
    }
    return SC_BOLUS_GRANTED;
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
        uint32_t counted = air_nl & s->window_mask; /* a prime's air reaches no patient */
        s->air_bucket_nl[s->air_bucket_index] =
            sat_add_u32(s->air_bucket_nl[s->air_bucket_index], counted);
        s->air_window_nl = sat_add_u32(s->air_window_nl, counted);
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
    if (s->air_armed != 0u) { /* a program is loaded and it is not a prime */
        if (s->air_run_nl >= s->bubble_limit_nl) {
            found |= SC_FAULT_AIR_BUBBLE;
        }
        if (s->air_window_nl > SC_AIR_CUMULATIVE_LIMIT_NL) {
            found |= SC_FAULT_AIR_CUMULATIVE;
        }
    }

    if (in->downstream_mmhg > (int32_t)s->occlusion_stop_mmhg) {
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

/* This tick's share of the bolus being delivered, at the bolus rate. */
static uint32_t bolus_tick_steps(sc_state_t *s)
{
    uint32_t steps = s->bolus_whole_steps;
    s->bolus_acc += s->bolus_rem;
    if (s->bolus_acc >= s->step_cost) {
        s->bolus_acc -= s->step_cost;
        steps++;
    }
    if (steps > s->bolus_left_steps) {
        steps = s->bolus_left_steps;
    }
    s->bolus_left_steps -= steps;
    return steps;
}

/* The end of the current segment: the VTBI (KVO or complete), or a segment of a
 * profile (hold until the application sets the next one). */
static void end_segment(sc_state_t *s)
{
    if (s->limit_steps == s->vtbi_steps) {
        s->phase = (s->program.kvo_ul_per_h != 0u) ? SC_PHASE_KVO : SC_PHASE_COMPLETE;
    } else {
        s->segment_held = 1u;
        s->rate_whole_steps = 0u;
        s->rate_rem = 0u;
    }
    s->bolus_left_steps = 0u;
}

/* The rolling 1 h cap and 4 h maximum (SR-CORE-2): never more than allow_steps. */
static uint32_t window_count(sc_state_t *s, uint32_t steps)
{
    uint32_t counted;
    if (steps > s->allow_steps) {
        steps = s->allow_steps;
        s->capped_ticks = sat_inc_u32(s->capped_ticks);
    }
    counted = steps & s->window_mask; /* a prime is not given to the patient */
    s->allow_steps -= counted;
    s->pumped_steps += counted; /* wraps by design: only differences are used */
    return steps;
}

/* Steps for this tick in the current phase, with the caps and the VTBI clamp. */
static uint32_t schedule_steps(sc_state_t *s)
{
    uint32_t steps;
    if (s->phase == SC_PHASE_RUNNING) {
        uint32_t left = s->limit_steps - s->delivered_steps;
        steps = s->rate_whole_steps;
        s->acc += s->rate_rem;
        if (s->acc >= s->step_cost) {
            s->acc -= s->step_cost;
            steps++;
        }
        if (s->bolus_left_steps != 0u) {
            steps += bolus_tick_steps(s);
        }
        if (steps >= left) {
            steps = left; /* never more than the VTBI (SR-CORE-2) */
            end_segment(s);
        }
        steps = window_count(s, steps);
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
        steps = window_count(s, steps);
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
    s->win_age_ticks++;
    if (s->win_age_ticks >= SC_WINDOW_BUCKET_TICKS) {
        window_roll(s);
    }
    found = detect_faults(s, in, air_nl, motor_active);
    if (found != 0u) {
        s->faults |= found;
        if (motor_active != 0u) {
            s->phase = SC_PHASE_PAUSED;
            s->bolus_left_steps = 0u; /* a stop cancels the rest of a bolus */
        }
    }
    if (s->faults != 0u) {
        return 0u;
    }
    return schedule_steps(s);
}

/* sc_run for one tick, without the loop (the device's 10 ms IRQ path) */
uint32_t sc_tick(sc_state_t *s, const sc_inputs_t *in, sc_output_t *out)
{
    uint32_t faults_before = s->faults;
    uint32_t steps = 0u;
    if (s->magic != SC_MAGIC) {
        s->faults |= SC_FAULT_STATE;
        out->phase = SC_PHASE_IDLE;
        out->fault_tick = 0u; /* as sc_run */
    } else {
        steps = tick_once(s, in, in->air_nl);
        out->phase = s->phase;
        out->fault_tick = (s->faults != faults_before) ? 1u : 0u;
    }
    out->steps = steps;
    out->faults = s->faults;
    return steps;
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
