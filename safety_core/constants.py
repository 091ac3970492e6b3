"""Constants of the safety core shared by the C core and the Python side: one source.

Owns every number that ``safety_core/include/safety_core.h`` (and the private
``#define``s of ``safety_core/src/safety_core.c``) defines and the Python side
uses: the device's absolute limits, phases, fault bits, result codes, field ids
and the tick, heartbeat, air and occlusion parameters.  ``reference.py`` and the
facade (``safety_core/__init__.py``) import them from here, so the facade no
longer loads the reference core's bytecode where the native module is the core.

Names are the C names without the ``SC_`` prefix (``SC_RATE_MAX_UL_PER_H`` ->
``RATE_MAX_UL_PER_H``); tests/test_core_constants.py parses the C sources and
asserts each value here equals the C one and each name has a C counterpart, so
the two can never drift.  Change a value in the C first, then here.

Where the numbers come from (SPEC requirement ids as cited by the C header):

* timing: the 10 ms control tick; heartbeat timeout 1 s (SR-CORE-7);
  occlusion debounce: samples over the limit for 50 ticks = 500 ms (SR-CORE-3,
  the same at any sample cadence); air window of 15 one-minute
  buckets, cumulative limit 1 mL per 15 min (SR-CORE-5);
* device absolute limits (SR-CORE-1 validation against SR-TH-2, SR-CORE-3,
  SR-CORE-5): rate 0.1..500 mL/h in 0.1 mL/h steps, VTBI 0.1..9,999 mL, KVO
  0.1..20 mL/h (0 = none), occlusion limit 2..20 psi = 104..1034 mmHg (2 psi =
  103.4 mmHg rounded up, 20 psi = 1034.3 rounded down), single-bubble limit
  50..500 uL, microstep calibration window 5,000..100,000 pL;
* dose limits (SR-CORE-2, SR-TH-1): rolling 1 h cap 0.1..500 mL and 4 h maximum
  0.1..2,000 mL (0 = none), bolus 0.1..50 mL, PCA lockout 1 min..4 h, at most
  60 patient boluses per hour, a prime moves at most 30 mL; the rolling windows
  are 5-minute buckets (49: 48 full + the current one), first closed after
  27,000 ticks so they never roll in the same tick as the air window;
* occlusion trend (SR-CORE-3): segment means of the pressure over a quarter cam
  turn (800 microsteps) compared one turn back (4 segments): a rise of 30 mmHg
  is an occluded line filling (1.33 uL/mmHg: 37 mmHg per 50 uL turn) when each of
  the four segment means rose by at least 2 mmHg and none by more than 40 % of the
  turn's rise (a closed line: a third at most; a venous step rises once); a segment
  within 8 mmHg of the one a turn before was not filling (the back-off starts there);
  a trend alarms up to 20 mL/h (above it the threshold stops within 5 min and a
  squeezed line moves the pressure like a trend); a segment closes after 8,192 samples at the latest; samples clamped to
  -1,024..4,095 mmHg; back-off at most 2 mL, going on a quarter turn per sample
  while the line is above 40 mmHg once the driver turned the last (SR-CORE-4); motion check with
  100..3,200 microsteps per encoder pulse and a slack of 2 pulses, a runaway
  clears once the cam has been still for 60 s (SR-CORE-6);
* phases, latched fault bits (SR-CORE-8), result codes and field ids of a
  refusal (SR-CORE-1): the C ``SC_PHASE_*``, ``SC_FAULT_*``, ``SC_OK`` /
  ``SC_ERR_*``, ``SC_FIELD_*``;
* volume accounting (safety_core.c): 1 uL/h for 1 ms = 5/18 pL, so a tick of
  rate r is r * TICK_MS * UNITS_PER_UL_PER_H_MS units of 1/18 pL and a
  microstep costs ustep_volume_pl * UNITS_PER_PL units; ``MAGIC`` ("SCOR")
  marks an initialised state.

MicroPython-portable.  ``MAGIC`` and ``U32_MAX`` are plain ints, not const():
they lie above the small-int range of 32-bit ports.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# ---- timing (SC_TICK_MS ...; SR-CORE-3, SR-CORE-5, SR-CORE-7) ----------------
TICK_MS = const(10)
HEARTBEAT_TIMEOUT_MS = const(1000)
HEARTBEAT_TIMEOUT_TICKS = const(100)  # HEARTBEAT_TIMEOUT_MS // TICK_MS (safety_core.c)
OCCLUSION_DEBOUNCE_TICKS = const(50)
AIR_BUCKET_TICKS = const(6000)
AIR_BUCKETS = const(15)
AIR_CUMULATIVE_LIMIT_NL = const(1000000)

# ---- device absolute limits (SR-CORE-1 against SR-TH-2, SR-CORE-3, SR-CORE-5) --
RATE_MIN_UL_PER_H = const(100)
RATE_MAX_UL_PER_H = const(500000)
RATE_STEP_UL_PER_H = const(100)
VTBI_MIN_UL = const(100)
VTBI_MAX_UL = const(9999000)
KVO_MIN_UL_PER_H = const(100)
KVO_MAX_UL_PER_H = const(20000)
OCCLUSION_MIN_MMHG = const(104)
OCCLUSION_MAX_MMHG = const(1034)
BUBBLE_MIN_UL = const(50)
BUBBLE_MAX_UL = const(500)
USTEP_VOLUME_MIN_PL = const(5000)
USTEP_VOLUME_MAX_PL = const(100000)

# ---- occlusion trend, back-off, motion check (SR-CORE-3, -4, -6) --------------------
TREND_SEGMENT_STEPS = const(800)
TREND_SEGMENTS = const(4)
TREND_RISE_MMHG = const(30)
TREND_STEP_MMHG = const(2)
TREND_SHARE_PCT = const(40)
TREND_QUIET_MMHG = const(8)
TREND_MAX_UL_PER_H = const(20000)
TREND_MAX_SAMPLES = const(8192)
PRESSURE_FLOOR_MMHG = const(1024)
PRESSURE_CEIL_MMHG = const(4095)
BACKOFF_MAX_UL = const(2000)
BACKOFF_TARGET_MMHG = const(40)
USTEPS_PER_PULSE_MIN = const(100)
USTEPS_PER_PULSE_MAX = const(3200)
MOTION_SLACK_PULSES = const(2)
MOTION_QUIET_TICKS = const(6000)

# ---- dose limits, PCA and prime (SR-CORE-2, SR-TH-1) -----------------------------
MAX_1H_MAX_UL = const(500000)
MAX_4H_MAX_UL = const(2000000)
BOLUS_MIN_UL = const(100)
BOLUS_MAX_UL = const(50000)
LOCKOUT_MIN_S = const(60)
LOCKOUT_MAX_S = const(14400)
MAX_BOLUSES_PER_H_MAX = const(60)
PRIME_MAX_UL = const(30000)
TICKS_PER_S = const(100)
WINDOW_BUCKET_TICKS = const(30000)
WINDOW_BUCKETS = const(49)
WINDOW_1H_BUCKETS = const(12)
WINDOW_FIRST_ROLL_TICKS = const(27000)
FLAG_PRIME = const(1)
BOLUS_PATIENT = const(0)
BOLUS_CLINICIAN = const(1)
BOLUS_GRANTED = const(0)
BOLUS_DENIED_LOCKOUT = const(1)
BOLUS_DENIED_COUNT = const(2)
BOLUS_DENIED_1H = const(3)
BOLUS_DENIED_4H = const(4)
BOLUS_DENIED_NOT_RUNNING = const(5)
BOLUS_DENIED_NO_PCA = const(6)
BOLUS_DENIED_IN_PROGRESS = const(7)
BOLUS_DENIED_SIZE = const(8)

# ---- phases --------------------------------------------------------------------
PHASE_IDLE = const(0)
PHASE_READY = const(1)
PHASE_RUNNING = const(2)
PHASE_KVO = const(3)
PHASE_COMPLETE = const(4)
PHASE_PAUSED = const(5)

# ---- latched fault bits (SR-CORE-8) ----------------------------------------------
FAULT_OCCLUSION_DOWN = const(1)
FAULT_AIR_BUBBLE = const(2)
FAULT_AIR_CUMULATIVE = const(4)
FAULT_HEARTBEAT = const(8)
FAULT_MOTION_STALL = const(16)
FAULT_MOTION_RUNAWAY = const(32)
FAULT_STATE = const(128)

# ---- results of init / load_program / start ----------------------------------------
OK = const(0)
ERR_BELOW_MIN = const(1)
ERR_ABOVE_MAX = const(2)
ERR_NOT_MULTIPLE = const(3)
ERR_BUSY = const(4)
ERR_NO_PROGRAM = const(5)
ERR_FAULTED = const(6)
ERR_STATE = const(7)

# ---- field ids named by a refusal (SR-CORE-1) --------------------------------------
FIELD_NONE = const(0)
FIELD_RATE = const(1)
FIELD_VTBI = const(2)
FIELD_KVO = const(3)
FIELD_OCCLUSION_LIMIT = const(4)
FIELD_BUBBLE_LIMIT = const(5)
FIELD_HARD_MIN_RATE = const(6)
FIELD_HARD_MAX_RATE = const(7)
FIELD_USTEP_VOLUME = const(8)
FIELD_MAX_1H = const(9)
FIELD_MAX_4H = const(10)
FIELD_BOLUS = const(11)
FIELD_BOLUS_RATE = const(12)
FIELD_LOCKOUT = const(13)
FIELD_MAX_BOLUSES = const(14)
FIELD_SEGMENT_END = const(15)
FIELD_FLAGS = const(16)
FIELD_USTEPS_PER_PULSE = const(17)

# ---- layout of sc_state_t (its 32-bit words, in declaration order) ------------------
# The scalars, with sc_program_t's fields in place of `program`; then the arrays
# air_bucket_nl[AIR_BUCKETS], win_steps[WINDOW_BUCKETS], win_boluses[WINDOW_BUCKETS].
# tests/test_core_constants.py checks every name and offset against the C struct.
PROGRAM_FIELDS = ("rate_ul_per_h", "vtbi_ul", "kvo_ul_per_h", "hard_min_rate_ul_per_h",
                  "hard_max_rate_ul_per_h", "occlusion_limit_mmhg", "bubble_limit_ul",
                  "max_1h_ul", "max_4h_ul", "bolus_ul", "bolus_rate_ul_per_h", "lockout_s",
                  "max_boluses_per_h", "flags")
# sc_watch_t (sc_sample's fields), in sc_state_t after the rolling-window scalars
WATCH_FIELDS = ("occlusion_over", "occlusion_since_tick", "trend_filled", "trend_seg_start_steps",
                "trend_seg_sum", "trend_seg_count", "trend_mean0", "trend_mean1", "trend_mean2",
                "trend_mean3", "trend_rise_steps", "trend_capped", "backoff_max_steps",
                "backoff_steps", "reversed_steps", "turned_steps", "backoff_stop_steps", "motion_usteps_per_pulse", "motion_armed",
                "motion_count", "motion_seen_steps", "motion_debt_steps", "motion_since_pulse",
                "motion_reverse_steps", "motion_pulse_tick")
STATE_HOT = ("magic", "phase", "faults", "step_cost", "rate_whole_steps", "rate_rem", "acc",
             "limit_steps", "delivered_steps", "allow_steps", "pumped_steps", "window_mask",
             "win_age_ticks", "bolus_left_steps", "bolus_whole_steps", "bolus_rem",
             "bolus_acc", "ticks", "last_heartbeat", "heartbeat_age_ticks",
             "motor_steps", "air_armed", "air_run_nl",
             "bubble_limit_nl", "air_window_nl", "air_bucket_age_ticks", "air_bucket_index",
             "kvo_whole_steps", "kvo_rem", "kvo_steps", "capped_ticks")
STATE_COLD = ("ustep_volume_pl", "vtbi_steps", "segment_held") + PROGRAM_FIELDS + (
    "bolus_steps", "lockout_ticks", "last_bolus_tick", "patient_boluses", "clinician_boluses",
    "boluses_denied", "last_denial", "max_1h_steps", "max_4h_steps", "win_index",
    "win_base_steps", "win_base_boluses", "win_1h_steps", "win_4h_steps", "win_1h_boluses"
) + WATCH_FIELDS
STATE_SCALARS = STATE_HOT + STATE_COLD
STATE_WORDS = len(STATE_SCALARS) + AIR_BUCKETS + 2 * WINDOW_BUCKETS


def state_word_index(name):
    """Index of a scalar field of sc_state_t among its 32-bit words (the native binding
    reads the state through them)."""
    return STATE_SCALARS.index(name)


# ---- private to the core's arithmetic (safety_core.c) --------------------------------
UNITS_PER_UL_PER_H_MS = const(5)  # 1 uL/h for 1 ms = 5/18 pL
UNITS_PER_PL = const(18)
# Not const(): above MicroPython's small-int range on 32-bit ports.
MAGIC = 0x53434F52                # "SCOR"
U32_MAX = 0xFFFFFFFF
