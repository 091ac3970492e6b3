/*
 * safety_core.h -- channel A of the infusion pump: the dose loop and the hard
 * interlocks.  This is the ONLY code that decides how many microsteps the
 * pump motor may make.
 *
 * Contract (see ../shared/SPEC.md, SR-CORE-*):
 *   - portable C99, no heap, no recursion, no floating point, no globals and no
 *     initialised data: every byte of state lives in a caller-owned sc_state_t;
 *   - every loop is bounded by a compile-time constant;
 *   - all arithmetic on counters saturates instead of wrapping;
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
#define SC_OCCLUSION_DEBOUNCE_TICKS 3u       /* 30 ms above the limit before a stop */
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

typedef struct {
    uint32_t rate_ul_per_h;          /* programmed rate */
    uint32_t vtbi_ul;                /* volume to be infused */
    uint32_t kvo_ul_per_h;           /* 0 = stop at VTBI; else <= rate */
    uint32_t hard_min_rate_ul_per_h; /* drug-library hard min, 0 = none */
    uint32_t hard_max_rate_ul_per_h; /* drug-library hard max, 0 = none */
    uint32_t occlusion_limit_mmhg;   /* downstream stop threshold */
    uint32_t bubble_limit_ul;        /* single-bubble stop size */
} sc_program_t;

typedef struct {
    int32_t downstream_mmhg;   /* latest calibrated downstream pressure */
    uint32_t air_nl;           /* air that passed the detector since the previous
                                  call; consumed by the first tick of the call */
    uint32_t air_present;      /* detector sees air now (0/1) */
    uint32_t heartbeat;        /* application counter; must change at least
                                  every SC_HEARTBEAT_TIMEOUT_MS */
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

/* The whole state: caller-owned, opaque in spirit (read through accessors). */
typedef struct {
    uint32_t magic;
    uint32_t ustep_volume_pl;
    uint32_t step_cost;             /* ustep_volume_pl * 18: units of 1/18 pL */
    uint32_t phase;
    uint32_t faults;
    sc_program_t program;
    /* Bresenham increments, computed at load time (no division per tick) */
    uint32_t rate_whole_steps;      /* whole microsteps per tick at rate */
    uint32_t rate_rem;              /* remainder per tick, units of 1/18 pL */
    uint32_t kvo_whole_steps;
    uint32_t kvo_rem;
    uint32_t acc;                   /* fractional step accumulator, < step_cost */
    uint32_t vtbi_steps;            /* floor(vtbi / ustep volume) */
    uint32_t delivered_steps;       /* primary infusion, counts toward VTBI */
    uint32_t kvo_steps;             /* delivered at KVO after VTBI */
    uint32_t bubble_limit_nl;
    uint32_t ticks;                 /* saturating tick counter */
    uint32_t last_heartbeat;
    uint32_t heartbeat_age_ticks;   /* ticks since heartbeat last changed */
    uint32_t occlusion_ticks;       /* consecutive ticks above the limit */
    uint32_t air_run_nl;            /* current contiguous bubble */
    uint32_t air_window_nl;         /* sum of the buckets */
    uint32_t air_bucket_index;
    uint32_t air_bucket_age_ticks;
    uint32_t air_bucket_nl[SC_AIR_BUCKETS];
} sc_state_t;

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

/* Advance one control tick; returns the microsteps for the next tick. */
uint32_t sc_tick(sc_state_t *s, const sc_inputs_t *in, sc_output_t *out);

/* Advance n_ticks ticks with the same inputs (air_nl consumed by the first). */
void sc_run(sc_state_t *s, const sc_inputs_t *in, uint32_t n_ticks, sc_output_t *out);

/* Acknowledge latched faults: each bit whose cause is gone is cleared
 * (SR-CORE-8).  Returns the faults still latched.  Never restarts the motor. */
uint32_t sc_acknowledge(sc_state_t *s, const sc_inputs_t *in);

#ifdef __cplusplus
}
#endif
#endif /* SAFETY_CORE_H */
