/*
 * safety_core.c -- channel A: dose loop and hard interlocks (SR-CORE-1,2,3,5,7,8).
 *
 * Owns: program validation against the device's absolute limits and the
 * drug-library hard limits, rate -> microstep conversion with exact volume
 * accounting, rate segments (profiles, tapers, intermittent doses), VTBI stop
 * and KVO, the rolling 1 h cap and 4 h maximum on everything pumped, PCA and
 * clinician boluses with lockout and hourly count (denials counted),
 * air and heartbeat stops, and fault latching (the tick); and per sensor sample
 * (sc_sample) the downstream-occlusion threshold and trend, the back-off after an
 * occlusion stop and the motion check of the cam encoder.
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
 * Samples and ticks: a tick (every SC_TICK_MS, a hard IRQ on the board) only
 * schedules steps and watches air and the heartbeat.  Pressure and the encoder
 * change once per sample (100 ms on the board, 1 s in the simulator), so their
 * rules run in sc_sample, once per sample, and measure time in ticks: a debounce
 * means the same at every sample cadence, and the tick stays short (PT-1).
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

/* The occlusion trend starts again: no segment means, the current segment opens now.
 * The start of the last rise (trend_rise_steps) stays: the line keeps its pressure
 * across a stop or a new rate, so a back-off still runs back all of what filled it. */
static void trend_reset(sc_state_t *s)
{
    sc_watch_t *w = &s->watch;
    w->trend_filled = 0u;
    w->trend_seg_sum = 0u;
    w->trend_seg_count = 0u;
    w->trend_seg_start_steps = s->pumped_steps;
    w->trend_capped = s->capped_ticks;
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
    s->watch.backoff_max_steps = vtbi_to_steps(SC_BACKOFF_MAX_UL, ustep_volume_pl);
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
    s->watch.occlusion_over = 0u;
    s->watch.motion_armed = 0u; /* a new base for the motion check */
    trend_reset(s);
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
    s->watch.occlusion_over = 0u;
    s->watch.backoff_steps = 0u; /* a back-off not taken by now never runs */
    s->watch.motion_armed = 0u; /* the first sample after the start sets the encoder base */
    trend_reset(s);
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
    trend_reset(s); /* a new rate moves the line's pressure: the trend starts again */
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
    trend_reset(s); /* the bolus rate raises the line's pressure: the trend starts again */
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

    if (motor_active != 0u && s->heartbeat_age_ticks > SC_HEARTBEAT_TIMEOUT_TICKS) {
        found |= SC_FAULT_HEARTBEAT;
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
    found = schedule_steps(s);
    s->motor_steps += found; /* wraps by design: the motion check uses differences */
    return found;
}

/* ---- per sensor sample: occlusion threshold and trend, back-off, motion ---- */

/* A pressure sample as an unsigned offset value (sums and means stay unsigned). */
static uint32_t pressure_offset(int32_t mmhg)
{
    if (mmhg < -(int32_t)SC_PRESSURE_FLOOR_MMHG) {
        return 0u;
    }
    if (mmhg > (int32_t)SC_PRESSURE_CEIL_MMHG) {
        return SC_PRESSURE_CEIL_MMHG + SC_PRESSURE_FLOOR_MMHG;
    }
    return (uint32_t)(mmhg + (int32_t)SC_PRESSURE_FLOOR_MMHG);
}

/* Threshold (SR-CORE-3): above the limit in every sample for the debounce time. */
static uint32_t occlusion_threshold(sc_state_t *s, int32_t mmhg)
{
    sc_watch_t *w = &s->watch;
    if (mmhg <= (int32_t)s->program.occlusion_limit_mmhg) {
        w->occlusion_over = 0u;
        return 0u;
    }
    if (w->occlusion_over == 0u) {
        w->occlusion_over = 1u;
        w->occlusion_since_tick = s->ticks;
    }
    return (s->ticks - w->occlusion_since_tick >= SC_OCCLUSION_DEBOUNCE_TICKS)
               ? SC_FAULT_OCCLUSION_DOWN : 0u;
}

/* A closed line filling: the new segment mean SC_TREND_RISE_MMHG above the one a turn
 * back, with a rise in every quarter (>= SC_TREND_STEP_MMHG) and none above
 * SC_TREND_SHARE_PCT of the turn's rise (a closed line: at most a third, whatever the
 * cam phase); a venous step, even two in a row, rises in one or two quarters. */
static uint32_t trend_rising(const sc_watch_t *w, uint32_t mean16)
{
    uint32_t m[SC_TREND_SEGMENTS + 1u];
    uint32_t i;
    uint32_t most = 0u;
    uint32_t rise;
    m[0] = w->trend_mean0;
    m[1] = w->trend_mean1;
    m[2] = w->trend_mean2;
    m[3] = w->trend_mean3;
    m[4] = mean16;
    for (i = 1u; i <= SC_TREND_SEGMENTS; i++) {
        if (m[i] < m[i - 1u] + SC_TREND_STEP_MMHG * 16u) {
            return 0u;
        }
        if (m[i] - m[i - 1u] > most) {
            most = m[i] - m[i - 1u];
        }
    }
    rise = mean16 - m[0];
    return (rise >= SC_TREND_RISE_MMHG * 16u && most * 100u <= rise * SC_TREND_SHARE_PCT)
               ? 1u : 0u;
}

/* The rate the motor runs at now: KVO, or the rate plus a bolus being given. */
static uint32_t flow_ul_per_h(const sc_state_t *s)
{
    if (s->phase == SC_PHASE_KVO) {
        return s->program.kvo_ul_per_h;
    }
    return s->program.rate_ul_per_h +
           ((s->bolus_left_steps != 0u) ? s->program.bolus_rate_ul_per_h : 0u);
}

/* Trend (SR-CORE-3): the sample joins the current segment; when the segment has a
 * quarter turn pumped, its mean is compared with the mean one turn earlier.  The
 * means run at every rate (they date the start of a rise for the back-off); the
 * alarm only up to SC_TREND_MAX_UL_PER_H, where a resistance change (a kinked or
 * squeezed line) moves the pressure far less than a turn into a closed line does. */
static uint32_t occlusion_trend(sc_state_t *s, uint32_t sample)
{
    sc_watch_t *w = &s->watch;
    uint32_t mean16;
    uint32_t rem;
    uint32_t found = 0u;
    if (s->capped_ticks != w->trend_capped) {
        trend_reset(s); /* a cap cut the flow: it resumes later, a rate change */
    }
    w->trend_seg_sum += sample; /* <= SC_TREND_MAX_SAMPLES * 5119: no overflow */
    w->trend_seg_count++;
    if (s->pumped_steps - w->trend_seg_start_steps < SC_TREND_SEGMENT_STEPS &&
        w->trend_seg_count < SC_TREND_MAX_SAMPLES) {
        return 0u;
    }
    mean16 = divmod_u32(w->trend_seg_sum * 16u, w->trend_seg_count, &rem);
    if (w->trend_filled >= SC_TREND_SEGMENTS && trend_rising(w, mean16) != 0u &&
        flow_ul_per_h(s) <= SC_TREND_MAX_UL_PER_H) {
        found = SC_FAULT_OCCLUSION_DOWN;
    }
    if (w->trend_filled >= SC_TREND_SEGMENTS &&
        mean16 <= w->trend_mean0 + SC_TREND_QUIET_MMHG * 16u) {
        w->trend_rise_steps = s->pumped_steps; /* the line was not filling up to here */
    }
    w->trend_mean0 = w->trend_mean1;
    w->trend_mean1 = w->trend_mean2;
    w->trend_mean2 = w->trend_mean3;
    w->trend_mean3 = mean16;
    if (w->trend_filled < SC_TREND_SEGMENTS) {
        w->trend_filled++;
    }
    w->trend_seg_start_steps = s->pumped_steps;
    w->trend_seg_sum = 0u;
    w->trend_seg_count = 0u;
    return found;
}

/* Motion check (SR-CORE-6): encoder pulses against the steps commanded since the
 * last sample.  Stall: steps worth SC_MOTION_SLACK_PULSES pulses without one
 * (while delivering).  Runaway: pulses beyond the steps by more than the slack,
 * also while stopped (the cam turning by itself lets the line run free). */
static uint32_t motion_check(sc_state_t *s, uint32_t count, uint32_t motor_active)
{
    sc_watch_t *w = &s->watch;
    uint32_t spp = w->motion_usteps_per_pulse;
    uint32_t pulses;
    uint32_t done;
    uint32_t debt;
    uint32_t reverse;
    uint32_t found = 0u;
    pulses = count - w->motion_count;
    done = s->motor_steps - w->motion_seen_steps;
    w->motion_count = count;
    w->motion_seen_steps = s->motor_steps;
    if (pulses != 0u) {
        w->motion_pulse_tick = s->ticks;
    }
    if (spp == 0u) {
        w->motion_armed = 0u;
        return 0u;
    }
    if (w->motion_armed == 0u) { /* the base after a start, a load or an acknowledgement */
        w->motion_armed = 1u;
        w->motion_debt_steps = spp;
        w->motion_since_pulse = 0u;
        w->motion_reverse_steps = 0u;
        return 0u;
    }
    if (pulses > 0xFFFFu) {
        pulses = 0xFFFFu; /* pulses * spp stays below 2^32 */
    }
    reverse = w->motion_reverse_steps; /* the back-off's own pulses are expected */
    if (reverse > pulses * spp) {
        reverse = pulses * spp;
    }
    w->motion_reverse_steps -= reverse;
    debt = sat_add_u32(w->motion_debt_steps, pulses * spp - reverse);
    debt = (debt > done) ? debt - done : 0u;
    w->motion_debt_steps = debt;
    if (pulses != 0u) {
        w->motion_since_pulse = 0u;
    } else {
        w->motion_since_pulse = sat_add_u32(w->motion_since_pulse, done);
    }
    if (debt > (SC_MOTION_SLACK_PULSES + 1u) * spp) {
        found |= SC_FAULT_MOTION_RUNAWAY;
    }
    if (motor_active != 0u && w->motion_since_pulse > SC_MOTION_SLACK_PULSES * spp) {
        found |= SC_FAULT_MOTION_STALL;
    }
    return found;
}

/* SR-CORE-4 at high rates: the line also holds the flow's own pressure; after an
 * occlusion stop, once the driver has turned all of the back-off, a quarter turn more
 * per sample while the line is above SC_BACKOFF_TARGET_MMHG, within the maximum. */
static void backoff_more(sc_state_t *s, int32_t mmhg)
{
    sc_watch_t *w = &s->watch;
    uint32_t left = w->backoff_max_steps - w->backoff_stop_steps;
    if ((s->faults & SC_FAULT_OCCLUSION_DOWN) != 0u && s->phase == SC_PHASE_PAUSED &&
        w->backoff_steps == 0u && w->turned_steps == w->reversed_steps &&
        mmhg > (int32_t)SC_BACKOFF_TARGET_MMHG && left != 0u) {
        w->backoff_steps = (left < SC_TREND_SEGMENT_STEPS) ? left : SC_TREND_SEGMENT_STEPS;
        w->backoff_stop_steps += w->backoff_steps;
    }
}

uint32_t sc_sample(sc_state_t *s, const sc_inputs_t *in)
{
    sc_watch_t *w = &s->watch;
    uint32_t motor_active;
    uint32_t found;
    if (s->magic != SC_MAGIC) {
        s->faults |= SC_FAULT_STATE;
        return s->faults;
    }
    motor_active = (s->phase == SC_PHASE_RUNNING || s->phase == SC_PHASE_KVO) ? 1u : 0u;
    found = occlusion_threshold(s, in->downstream_mmhg);
    if (motor_active != 0u && s->window_mask != 0u && s->segment_held == 0u) {
        found |= occlusion_trend(s, pressure_offset(in->downstream_mmhg));
    } else {
        trend_reset(s); /* stopped, priming or holding: no trend */
    }
    if (motor_active == 0u) {
        found = 0u; /* an occlusion stops delivery: nothing to stop */
        backoff_more(s, in->downstream_mmhg);
    }
    found |= motion_check(s, in->encoder_count, motor_active);
    found &= ~s->faults; /* only a new fault acts */
    if (found != 0u) {
        s->faults |= found;
        if (motor_active != 0u) {
            if ((found & SC_FAULT_OCCLUSION_DOWN) != 0u) {
                /* SR-CORE-4: run back what filled the line since it was last quiet */
                uint32_t back = s->pumped_steps - w->trend_rise_steps;
                w->backoff_steps = (back < w->backoff_max_steps) ? back : w->backoff_max_steps;
                w->backoff_stop_steps = w->backoff_steps;
                w->trend_rise_steps = s->pumped_steps; /* the back-off relieves the line */
            }
            s->phase = SC_PHASE_PAUSED;
            s->bolus_left_steps = 0u; /* a stop cancels the rest of a bolus */
        }
    }
    return s->faults;
}

uint32_t sc_take_backoff(sc_state_t *s)
{
    sc_watch_t *w = &s->watch;
    uint32_t back;
    if (s->magic != SC_MAGIC) {
        return 0u;
    }
    back = w->backoff_steps;
    w->backoff_steps = 0u;
    w->reversed_steps = sat_add_u32(w->reversed_steps, back);
    return back;
}

void sc_backoff_done(sc_state_t *s, uint32_t usteps)
{
    if (s->magic == SC_MAGIC) {
        /* the cam turned back: the motion check expects those pulses (until a re-arm) */
        s->watch.motion_reverse_steps = sat_add_u32(s->watch.motion_reverse_steps, usteps);
        s->watch.turned_steps = sat_add_u32(s->watch.turned_steps, usteps);
    }
}

uint32_t sc_set_motion_check(sc_state_t *s, uint32_t usteps_per_pulse, sc_refusal_t *why)
{
    if (s->magic != SC_MAGIC) {
        return refuse(why, SC_ERR_STATE, SC_FIELD_NONE, 0u);
    }
    if (s->phase == SC_PHASE_RUNNING || s->phase == SC_PHASE_KVO) {
        return refuse(why, SC_ERR_BUSY, SC_FIELD_NONE, 0u);
    }
    if (usteps_per_pulse != 0u) {
        uint32_t rc = check_range(why, SC_FIELD_USTEPS_PER_PULSE, usteps_per_pulse,
                         SC_USTEPS_PER_PULSE_MIN, SC_USTEPS_PER_PULSE_MAX);
        if (rc != SC_OK) {
            return rc;
        }
    }
    s->watch.motion_usteps_per_pulse = usteps_per_pulse;
    s->watch.motion_armed = 0u;
    (void)refuse(why, SC_OK, SC_FIELD_NONE, 0u);
    return SC_OK;
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
    (void)sc_sample(s, in); /* a fault it latches reads as tick 1: nothing moved */
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
        s->watch.occlusion_over = 0u;
        trend_reset(s);
    }
    /* a stall cannot be seen while stopped: the clinician has checked the set */
    if ((s->faults & SC_FAULT_MOTION_STALL) != 0u) {
        s->faults &= ~SC_FAULT_MOTION_STALL;
        s->watch.motion_armed = 0u;
    }
    /* runaway: the cam has given no pulse for a minute, nor since the last sample */
    if ((s->faults & SC_FAULT_MOTION_RUNAWAY) != 0u && in->encoder_count == s->watch.motion_count &&
        s->ticks - s->watch.motion_pulse_tick >= SC_MOTION_QUIET_TICKS) {
        s->faults &= ~SC_FAULT_MOTION_RUNAWAY;
        s->watch.motion_armed = 0u;
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
