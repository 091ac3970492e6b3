/*
 * safety_core.h -- channel A of the infusion pump: the dose loop and the hard
 * interlocks.  This is the ONLY code that decides how many microsteps the
 * pump motor may make.
 *
 * Contract (see ../shared/SPEC.md, SR-CORE-*):
 *   - portable C99, no heap, no recursion, no floating point, no globals and no
 *     initialised data: every byte of state lives in a caller-owned sc_state_t;
 *   - every loop is bounded by a compile-time constant;
 *   - all arithmetic on counters saturates instead of wrapping, but for the
 *     sequence counters pumped_steps, motor_steps and patient_boluses and the
 *     encoder count, which wrap by design (only their differences are used);
 *   - units are in the names: _ul (microlitres), _nl (nanolitres),
 *     _pl (picolitres), _mmhg, _ms, _ticks, _ul_per_h.
 *
 * The control tick is SC_TICK_MS long.  Each tick turns the validated program
 * and the latest sensor samples into the number of microsteps for the next
 * tick, keeps the volume accounting and latches faults.  sc_run() advances
 * many ticks with the same inputs (the simulator's batch entry point).
 *
 * The pure-Python reference (safety_core/reference.py) is the executable
 * specification of this file and must stay bit-exact with it.
 */
#ifndef SAFETY_CORE_H
#define SAFETY_CORE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- timing ---------------------------------------------------------- */
#define SC_TICK_MS 10u                       /* control tick period */
#define SC_HEARTBEAT_TIMEOUT_MS 1000u        /* SR-CORE-7: > 1 s without feed -> stop */
#define SC_OCCLUSION_DEBOUNCE_TICKS 50u      /* samples above the limit for 500 ms of
                                                ticks before a stop: the same at any
                                                sample cadence (100 ms board, 1 s sim) */
#define SC_AIR_BUCKET_TICKS 6000u            /* 1 minute buckets ...            */
#define SC_AIR_BUCKETS 15u                   /* ... 15 of them: rolling 15 min  */
#define SC_AIR_CUMULATIVE_LIMIT_NL 1000000u  /* SR-CORE-5: > 1 mL / 15 min     */

/* ---- device absolute limits (SPEC SR-TH-2, SR-CORE-3, SR-CORE-5) ----- */
#define SC_RATE_MIN_UL_PER_H 100u            /* 0.1 mL/h */
#define SC_RATE_MAX_UL_PER_H 500000u         /* 500 mL/h */
#define SC_RATE_STEP_UL_PER_H 100u           /* 0.1 mL/h resolution */
#define SC_VTBI_MIN_UL 100u                  /* 0.1 mL */
#define SC_VTBI_MAX_UL 9999000u              /* 9999 mL */
#define SC_KVO_MIN_UL_PER_H 100u             /* 0.1 mL/h (0 = no KVO) */
#define SC_KVO_MAX_UL_PER_H 20000u           /* 20 mL/h */
#define SC_OCCLUSION_MIN_MMHG 104u           /* 2 psi = 103.4 mmHg, rounded up */
#define SC_OCCLUSION_MAX_MMHG 1034u          /* 20 psi = 1034.3 mmHg, rounded down */
#define SC_BUBBLE_MIN_UL 50u
#define SC_BUBBLE_MAX_UL 500u
#define SC_USTEP_VOLUME_MIN_PL 5000u         /* calibration sanity window */
#define SC_USTEP_VOLUME_MAX_PL 100000u

/* ---- dose limits, PCA and prime (SR-CORE-2, SR-TH-1) ------------------ */
#define SC_MAX_1H_MAX_UL 500000u             /* rolling-hour cap: 0 = none, else 0.1..500 mL */
#define SC_MAX_4H_MAX_UL 2000000u            /* rolling 4 h maximum: 0 = none, else 0.1..2000 mL */
#define SC_BOLUS_MIN_UL 100u                 /* PCA / clinician bolus 0.1 .. 50 mL */
#define SC_BOLUS_MAX_UL 50000u
#define SC_LOCKOUT_MIN_S 60u                 /* PCA lockout 1 min .. 4 h */
#define SC_LOCKOUT_MAX_S 14400u
#define SC_MAX_BOLUSES_PER_H_MAX 60u         /* 0 = no count limit */
#define SC_PRIME_MAX_UL 30000u               /* a prime moves at most 30 mL */
#define SC_TICKS_PER_S 100u                  /* 1000 / SC_TICK_MS */
/* The rolling windows: 5-minute buckets, 48 full ones (4 h) and the current one.
 * A window sums the current bucket and the 12 (1 h) or 48 (4 h) before it, so it
 * looks back 60..65 min (240..245 min): never less than the hour, only more. */
#define SC_WINDOW_BUCKET_TICKS 30000u
#define SC_WINDOW_BUCKETS 49u
#define SC_WINDOW_1H_BUCKETS 12u
#define SC_WINDOW_FIRST_ROLL_TICKS 27000u    /* half an air bucket out of step with the
                                                air window: the two never roll in one tick */

/* ---- occlusion trend, back-off and motion check (SR-CORE-3, -4, -6) ----- */
/* Pressure samples are averaged over segments of a quarter cam turn of pumped
 * microsteps; a segment mean SC_TREND_RISE_MMHG above the mean one whole turn
 * earlier (same cam phase: the pulsation cancels) is the pressure rise per volume
 * pumped of an occluded line (1.33 uL/mmHg: 37 mmHg per 50 uL turn), whatever the
 * threshold, when it rose in each of the four segments, none by more than 40 % of
 * it (a closed line: a third at most): a venous step (+/-20 mmHg, even two in a row)
 * rises in one or two segments and holds; rate changes, boluses and caps restart
 * the trend. */
#define SC_TREND_SEGMENT_STEPS 800u          /* a quarter of the 3200-microstep cam turn */
#define SC_TREND_SEGMENTS 4u                 /* compared one turn back */
#define SC_TREND_RISE_MMHG 30u
#define SC_TREND_STEP_MMHG 2u                /* ... rising in each of its four segments */
#define SC_TREND_SHARE_PCT 40u               /* ... none by more than 40 % of the rise */
#define SC_TREND_QUIET_MMHG 8u               /* a segment mean within this of the one a turn
                                                before: the line was not filling then (a
                                                closed line rises 37 mmHg per turn) */
#define SC_TREND_MAX_UL_PER_H 20000u         /* trend alarms up to 20 mL/h; above it the
                                                threshold alone stops within 5 min (1034
                                                mmHg x 1.33 uL/mmHg / 300 s = 16.5 mL/h),
                                                and a squeezed line (3x resistance) would
                                                look like a trend (+68 mmHg at 100 mL/h) */
#define SC_TREND_MAX_SAMPLES 8192u           /* a segment closes after this many samples */
#define SC_PRESSURE_FLOOR_MMHG 1024u         /* samples clamped to -1024 .. 4095 mmHg */
#define SC_PRESSURE_CEIL_MMHG 4095u
#define SC_BACKOFF_MAX_UL 2000u              /* SR-CORE-4: back-off never reverses more */
#define SC_BACKOFF_TARGET_MMHG 40u           /* ... and goes on, a quarter turn a sample
                                                once the last is turned, while the line is
                                                above this (the flow's own pressure at high
                                                rates: 1.33 uL/mmHg, 35 mmHg = 47 uL) */
#define SC_USTEPS_PER_PULSE_MIN 100u         /* motion check: encoder resolution window */
#define SC_USTEPS_PER_PULSE_MAX 3200u        /* >= 1 pulse per cam turn (SPEC section 2) */
#define SC_MOTION_SLACK_PULSES 2u            /* tolerance of the motion check, in pulses */
#define SC_MOTION_QUIET_TICKS 6000u          /* a runaway clears on acknowledge once the cam
                                                has given no pulse for 60 s */

/* program flags */
#define SC_FLAG_PRIME (1u << 0)              /* priming the set, not connected: no air stop,
                                                VTBI <= SC_PRIME_MAX_UL, no KVO, no bolus */

/* bolus kinds and results of sc_bolus (SR-CORE-2: denied boluses are counted) */
#define SC_BOLUS_PATIENT 0u
#define SC_BOLUS_CLINICIAN 1u
#define SC_BOLUS_GRANTED 0u
#define SC_BOLUS_DENIED_LOCKOUT 1u     /* inside the lockout after the last patient bolus */
#define SC_BOLUS_DENIED_COUNT 2u       /* max patient boluses in the rolling hour reached */
#define SC_BOLUS_DENIED_1H 3u          /* would pass the rolling 1 h maximum */
#define SC_BOLUS_DENIED_4H 4u          /* would pass the rolling 4 h maximum */
#define SC_BOLUS_DENIED_NOT_RUNNING 5u /* only while delivering the primary infusion */
#define SC_BOLUS_DENIED_NO_PCA 6u      /* the program has no bolus */
#define SC_BOLUS_DENIED_IN_PROGRESS 7u /* a bolus is being delivered */
#define SC_BOLUS_DENIED_SIZE 8u        /* clinician bolus outside SC_BOLUS_MIN/MAX_UL */

/* ---- phases ----------------------------------------------------------- */
#define SC_PHASE_IDLE 0u      /* no valid program */
#define SC_PHASE_READY 1u     /* program loaded, never started */
#define SC_PHASE_RUNNING 2u   /* delivering the programmed rate */
#define SC_PHASE_KVO 3u       /* VTBI reached, keep-vein-open rate */
#define SC_PHASE_COMPLETE 4u  /* VTBI reached, no KVO: motor stopped */
#define SC_PHASE_PAUSED 5u    /* stopped by the application or by a fault */

/* ---- faults (latched bits, SR-CORE-8) --------------------------------- */
#define SC_FAULT_OCCLUSION_DOWN (1u << 0)   /* SR-CORE-3 */
#define SC_FAULT_AIR_BUBBLE (1u << 1)       /* SR-CORE-5 single bubble */
#define SC_FAULT_AIR_CUMULATIVE (1u << 2)   /* SR-CORE-5 rolling 15 min */
#define SC_FAULT_HEARTBEAT (1u << 3)        /* SR-CORE-7 */
#define SC_FAULT_MOTION_STALL (1u << 4)     /* SR-CORE-6: steps made, cam not turning */
#define SC_FAULT_MOTION_RUNAWAY (1u << 5)   /* SR-CORE-6: cam turning beyond the steps */
#define SC_FAULT_STATE (1u << 7)            /* state buffer corrupt / not initialised */

/* ---- results of sc_init / sc_load_program / sc_start ------------------ */
#define SC_OK 0u
#define SC_ERR_BELOW_MIN 1u        /* value below `limit` */
#define SC_ERR_ABOVE_MAX 2u        /* value above `limit` */
#define SC_ERR_NOT_MULTIPLE 3u     /* value not a multiple of `limit` */
#define SC_ERR_BUSY 4u             /* refused while delivering */
#define SC_ERR_NO_PROGRAM 5u       /* start without a program */
#define SC_ERR_FAULTED 6u          /* start while a fault is latched */
#define SC_ERR_STATE 7u            /* state buffer corrupt / not initialised */

/* field ids named by a refusal (SR-CORE-1) */
#define SC_FIELD_NONE 0u
#define SC_FIELD_RATE 1u
#define SC_FIELD_VTBI 2u
#define SC_FIELD_KVO 3u
#define SC_FIELD_OCCLUSION_LIMIT 4u
#define SC_FIELD_BUBBLE_LIMIT 5u
#define SC_FIELD_HARD_MIN_RATE 6u
#define SC_FIELD_HARD_MAX_RATE 7u
#define SC_FIELD_USTEP_VOLUME 8u
#define SC_FIELD_MAX_1H 9u
#define SC_FIELD_MAX_4H 10u
#define SC_FIELD_BOLUS 11u
#define SC_FIELD_BOLUS_RATE 12u
#define SC_FIELD_LOCKOUT 13u
#define SC_FIELD_MAX_BOLUSES 14u
#define SC_FIELD_SEGMENT_END 15u
#define SC_FIELD_FLAGS 16u
#define SC_FIELD_USTEPS_PER_PULSE 17u

typedef struct {
    uint32_t rate_ul_per_h;          /* programmed rate */
    uint32_t vtbi_ul;                /* volume to be infused */
    uint32_t kvo_ul_per_h;           /* 0 = stop at VTBI; else <= rate */
    uint32_t hard_min_rate_ul_per_h; /* drug-library hard min, 0 = none */
    uint32_t hard_max_rate_ul_per_h; /* drug-library hard max, 0 = none */
    uint32_t occlusion_limit_mmhg;   /* downstream stop threshold */
    uint32_t bubble_limit_ul;        /* single-bubble stop size */
    uint32_t max_1h_ul;              /* rolling-hour cap on everything pumped, 0 = none */
    uint32_t max_4h_ul;              /* rolling 4 h maximum, 0 = none */
    uint32_t bolus_ul;               /* PCA patient bolus, 0 = no PCA */
    uint32_t bolus_rate_ul_per_h;    /* rate a bolus is given at (on top of the basal) */
    uint32_t lockout_s;              /* PCA lockout from the start of a patient bolus */
    uint32_t max_boluses_per_h;      /* patient boluses granted per rolling hour, 0 = any */
    uint32_t flags;                  /* SC_FLAG_* */
} sc_program_t;

typedef struct {
    int32_t downstream_mmhg;   /* latest calibrated downstream pressure */
    uint32_t air_nl;           /* air that passed the detector since the previous
                                  call; consumed by the first tick of the call */
    uint32_t air_present;      /* detector sees air now (0/1) */
    uint32_t heartbeat;        /* application counter; must change at least
                                  every SC_HEARTBEAT_TIMEOUT_MS */
    uint32_t encoder_count;    /* cam encoder pulses since boot (wraps), either
                                  direction; read by sc_sample only */
} sc_inputs_t;

typedef struct {
    uint32_t code;    /* SC_OK or SC_ERR_* */
    uint32_t field;   /* SC_FIELD_* */
    uint32_t limit;   /* the limit that was crossed, in the field's unit */
} sc_refusal_t;

typedef struct {
    uint32_t steps;          /* microsteps commanded over the ticks run */
    uint32_t faults;         /* latched fault word after the last tick */
    uint32_t phase;          /* SC_PHASE_* after the last tick */
    uint32_t fault_tick;     /* index (1-based) of the tick that latched the first
                                new fault in this call, 0 = none */
} sc_output_t;

/* What sc_sample keeps: the occlusion threshold and trend (SR-CORE-3), the back-off
 * (SR-CORE-4) and the motion check (SR-CORE-6).  A struct of its own so the sample
 * code reaches its fields from one base pointer (short Thumb-1 loads, PT-1 .text). */
typedef struct {
    uint32_t occlusion_over;        /* 1: the last samples were above the limit ... */
    uint32_t occlusion_since_tick;  /* ... since this tick */
    uint32_t trend_filled;          /* segment means held (0..SC_TREND_SEGMENTS) */
    uint32_t trend_seg_start_steps; /* pumped_steps when the current segment opened */
    uint32_t trend_seg_sum;         /* sum of (sample + SC_PRESSURE_FLOOR_MMHG) */
    uint32_t trend_seg_count;
    uint32_t trend_mean0;           /* segment means x16 (offset as the sum), oldest first */
    uint32_t trend_mean1;
    uint32_t trend_mean2;
    uint32_t trend_mean3;
    uint32_t trend_rise_steps;      /* pumped_steps at the end of the last segment that
                                       rose less than SC_TREND_QUIET_MMHG in a turn */
    uint32_t trend_capped;          /* capped_ticks at the last sample */
    uint32_t backoff_max_steps;     /* SC_BACKOFF_MAX_UL in microsteps */
    uint32_t backoff_steps;         /* reverse microsteps decided, not yet taken */
    uint32_t reversed_steps;        /* reverse microsteps taken (saturating) */
    uint32_t turned_steps;          /* reverse microsteps the driver turned (saturating) */
    uint32_t backoff_stop_steps;    /* decided since the occlusion stop (<= the maximum) */
    uint32_t motion_usteps_per_pulse; /* 0: no motion check */
    uint32_t motion_armed;          /* 1 once a sample after the start was seen */
    uint32_t motion_count;          /* encoder count at the last sample */
    uint32_t motion_seen_steps;     /* motor_steps at the last sample */
    uint32_t motion_debt_steps;     /* how far the encoder is ahead of the steps, plus
                                       one pulse of slack (runaway above 3 pulses) */
    uint32_t motion_since_pulse;    /* steps commanded since the last pulse (stall) */
    uint32_t motion_reverse_steps;  /* back-off taken whose pulses are still to come */
    uint32_t motion_pulse_tick;     /* ticks at the last sample that saw a pulse */
} sc_watch_t;

/* The whole state: caller-owned, opaque in spirit (read through accessors).
 * Every field is a 32-bit word.  The first 32 words are what a tick touches:
 * a Cortex-M0+ load/store reaches them from the state pointer in one instruction
 * (5-bit word offset); the rest is used at program load, bolus requests and
 * window rolls.  safety_core/constants.py (STATE_SCALARS) names the same order. */
typedef struct {
    /* ---- hot: every tick ---- */
    uint32_t magic;
    uint32_t phase;
    uint32_t faults;
    uint32_t step_cost;             /* ustep_volume_pl * 18: units of 1/18 pL */
    /* Bresenham increments, computed at load time (no division per tick) */
    uint32_t rate_whole_steps;      /* whole microsteps per tick at rate */
    uint32_t rate_rem;              /* remainder per tick, units of 1/18 pL */
    uint32_t acc;                   /* fractional step accumulator, < step_cost */
    uint32_t limit_steps;           /* delivered_steps where the current segment ends */
    uint32_t delivered_steps;       /* primary infusion, counts toward VTBI */
    /* rolling windows (SR-CORE-2): everything the motor pumped forward */
    uint32_t allow_steps;           /* steps the caps leave for the current bucket */
    uint32_t pumped_steps;          /* wraps: differences of it are exact */
    uint32_t window_mask;           /* U32_MAX; 0 while priming (not given to the patient) */
    uint32_t win_age_ticks;         /* ticks since the current bucket opened */
    /* the bolus being delivered */
    uint32_t bolus_left_steps;
    uint32_t bolus_whole_steps;     /* Bresenham increments of the bolus rate */
    uint32_t bolus_rem;
    uint32_t bolus_acc;
    uint32_t ticks;                 /* saturating tick counter */
    uint32_t last_heartbeat;
    uint32_t heartbeat_age_ticks;   /* ticks since heartbeat last changed */
    uint32_t motor_steps;           /* every forward microstep commanded (wraps) */
    uint32_t air_armed;             /* 1 once a program is loaded, 0 while priming */
    uint32_t air_run_nl;            /* current contiguous bubble */
    uint32_t bubble_limit_nl;
    uint32_t air_window_nl;         /* sum of the buckets */
    uint32_t air_bucket_age_ticks;
    uint32_t air_bucket_index;
    uint32_t kvo_whole_steps;
    uint32_t kvo_rem;
    uint32_t kvo_steps;             /* delivered at KVO after VTBI */
    uint32_t capped_ticks;          /* ticks whose steps a cap cut (saturating) */
    /* ---- cold: program load, bolus requests, segment ends, window rolls ---- */
    uint32_t ustep_volume_pl;
    uint32_t vtbi_steps;            /* floor(vtbi / ustep volume) */
    uint32_t segment_held;          /* 1: segment ended before the VTBI, waiting for the next */
    sc_program_t program;
    uint32_t bolus_steps;           /* patient bolus size */
    uint32_t lockout_ticks;
    uint32_t last_bolus_tick;       /* s->ticks at the last granted patient bolus */
    uint32_t patient_boluses;       /* granted patient boluses (wraps: a sequence counter) */
    uint32_t clinician_boluses;     /* granted clinician boluses (saturating) */
    uint32_t boluses_denied;        /* all denied requests (saturating) */
    uint32_t last_denial;           /* SC_BOLUS_DENIED_* of the last denial */
    uint32_t max_1h_steps;          /* caps in steps, U32_MAX = none */
    uint32_t max_4h_steps;
    uint32_t win_index;             /* bucket being filled */
    uint32_t win_base_steps;        /* pumped_steps when the current bucket opened */
    uint32_t win_base_boluses;      /* patient_boluses when the current bucket opened */
    uint32_t win_1h_steps;          /* the 12 full buckets before the current one */
    uint32_t win_4h_steps;          /* the 48 full buckets before the current one */
    uint32_t win_1h_boluses;
    sc_watch_t watch;               /* per sample: occlusion, back-off, motion */
    uint32_t air_bucket_nl[SC_AIR_BUCKETS];
    uint32_t win_steps[SC_WINDOW_BUCKETS];
    uint32_t win_boluses[SC_WINDOW_BUCKETS];
} sc_state_t;
#define SC_STATE_WORDS 201u   /* 32-bit words of sc_state_t (checked at compile time) */

/* Reset the state and set the calibration.  Returns SC_OK or a refusal. */
uint32_t sc_init(sc_state_t *s, uint32_t ustep_volume_pl, sc_refusal_t *why);

/* Validate and load a program (SR-CORE-1).  Refused while RUNNING or KVO,
 * and the previous program stays in force on any refusal. */
uint32_t sc_load_program(sc_state_t *s, const sc_program_t *p, sc_refusal_t *why);

/* Start or resume delivery.  Resumes into RUNNING, KVO or COMPLETE from the
 * volume already delivered.  Refused with no program or a latched fault. */
uint32_t sc_start(sc_state_t *s);

/* Stop the motor (application pause).  Always succeeds. */
void sc_pause(sc_state_t *s);

/* Advance one control tick; returns the microsteps for the next tick.  Reads
 * air_nl, air_present and heartbeat; the pressure and the encoder are sc_sample's. */
uint32_t sc_tick(sc_state_t *s, const sc_inputs_t *in, sc_output_t *out);

/* One new sensor sample (call once per sample, e.g. every 100 ms on the board):
 * downstream occlusion over the threshold for SC_OCCLUSION_DEBOUNCE_TICKS or by
 * trend (SR-CORE-3), the back-off it decides (SR-CORE-4), and the motion check of
 * the encoder against the steps commanded (SR-CORE-6).  A new fault stops delivery.
 * Returns the latched fault word. */
uint32_t sc_sample(sc_state_t *s, const sc_inputs_t *in);

/* sc_sample once, then n_ticks ticks with the same inputs (air_nl consumed by the
 * first): the simulator's batch entry point, one call per sample. */
void sc_run(sc_state_t *s, const sc_inputs_t *in, uint32_t n_ticks, sc_output_t *out);

/* The reverse microsteps an occlusion stop decided (SR-CORE-4), once: the caller
 * runs the motor back by them now (a start cancels what is left).  Never volume
 * given back: the accounting keeps them delivered, so an occlusion can only
 * under-deliver.  Counted in watch.reversed_steps. */
uint32_t sc_take_backoff(sc_state_t *s);

/* The driver turned the motor back by usteps of a back-off: the motion check
 * expects their encoder pulses (until it re-arms at the next start). */
void sc_backoff_done(sc_state_t *s, uint32_t usteps);

/* Motion check (SR-CORE-6): microsteps per encoder pulse (3200 / pulses per turn),
 * 0 = no encoder.  Refused while delivering. */
uint32_t sc_set_motion_check(sc_state_t *s, uint32_t usteps_per_pulse, sc_refusal_t *why);

/* Change the rate of the loaded program (profiles, tapers, intermittent doses):
 * validated as the program's rate; until_ul is the primary volume at which this
 * segment ends (0 = at the VTBI).  A segment that ends before the VTBI holds the
 * motor (segment_held) until the next sc_set_rate.  Refused in IDLE, KVO and
 * COMPLETE; the previous rate stays in force on any refusal. */
uint32_t sc_set_rate(sc_state_t *s, uint32_t rate_ul_per_h, uint32_t until_ul,
                     sc_refusal_t *why);

/* Ask for a bolus (kind SC_BOLUS_PATIENT: the program's size, lockout and hourly
 * count apply; SC_BOLUS_CLINICIAN: amount_ul, no lockout or count).  Both must fit
 * the rolling 1 h and 4 h maxima.  Returns SC_BOLUS_GRANTED or the denial, which
 * is counted.  A pause or a fault cancels the rest of a bolus. */
uint32_t sc_bolus(sc_state_t *s, uint32_t kind, uint32_t amount_ul);

/* After a power loss (SR-TH-5), before the resumed program first starts (READY):
 * what the pump's record says was pumped in the last hour (ul_1h) and 4 hours
 * (ul_4h), and the patient boluses of the last hour, enter the rolling windows as if
 * given just now, so they stay counted at least as long as they really would; and a
 * full lockout starts now.  SC_ERR_BUSY outside READY, SC_ERR_ABOVE_MAX for values
 * beyond the 4 h maximum / bolus count limits. */
uint32_t sc_restore_history(sc_state_t *s, uint32_t ul_1h, uint32_t ul_4h,
                            uint32_t boluses_1h);

/* Steps pumped in the rolling 1 h (hours4 = 0) or 4 h (hours4 = 1) window. */
uint32_t sc_window_steps(const sc_state_t *s, uint32_t hours4);

/* Acknowledge latched faults: each bit whose cause is gone is cleared
 * (SR-CORE-8).  Returns the faults still latched.  Never restarts the motor. */
uint32_t sc_acknowledge(sc_state_t *s, const sc_inputs_t *in);

#ifdef __cplusplus
}
#endif
#endif /* SAFETY_CORE_H */
