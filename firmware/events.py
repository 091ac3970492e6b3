"""Event-log record types (SR-LOG-1): stable numeric codes and their names.

Owns the vocabulary of the event log.  Codes are part of the log format and
the service protocol: never renumber, only append.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

POWER_ON = const(1)
POWER_OFF = const(2)             # a = 1: the previous run ended without an orderly stop
#                                  (battery out, reset), logged at the next power-on;
#                                  b = that run's uptime s at its last record
SELF_TEST_PASSED = const(3)
SELF_TEST_FAILED = const(4)
THERAPY_PROGRAMMED = const(10)   # a = rate uL/h, b = VTBI uL
THERAPY_STARTED = const(11)      # a = delivered uL
THERAPY_PAUSED = const(12)       # a = delivered uL
THERAPY_RESUMED = const(13)      # a = delivered uL
THERAPY_STOPPED = const(14)      # a = delivered uL, b = core fault bits
THERAPY_COMPLETED = const(15)    # a = delivered uL, b = 1 if KVO follows
RATE_CHANGED = const(16)
PROGRAM_REFUSED = const(17)      # a = field id, b = refusal code
# therapy modes (issue 7: firmware/therapy/)
THERAPY_MODE = const(23)         # a = mode (firmware/therapy MODES index), b = segments;
#                                  logged right after THERAPY_PROGRAMMED of a mode
THERAPY_DELAYED = const(24)      # a = start delay s: start() armed a delayed start;
#                                  a = 0, b = 1: RUN/STOP cancelled the delayed start
TAPER_DOWN_EARLY = const(25)     # a = uL of the bag not given, b = uL of the taper down
BOLUS_REQUESTED = const(20)      # a = kind (0 patient, 1 clinician), b = amount uL (clinician)
BOLUS_GRANTED = const(21)        # a = kind, b = uL in the rolling hour before it
BOLUS_DENIED = const(22)         # a = reason (safety_core BOLUS_DENIED_*), b = kind
ALARM_RAISED = const(30)         # a = alarm id, b = priority
ALARM_ACKNOWLEDGED = const(31)   # a = alarm id
ALARM_SILENCED = const(32)       # a = alarm id
ALARM_CLEARED = const(33)        # a = alarm id
ALARM_ESCALATED = const(34)      # a = alarm id, b = priority of the pattern it now sounds
LIBRARY_LOADED = const(40)       # a = library id, b = version
LIBRARY_REJECTED = const(41)     # a = reason (firmware/library_store.py R_*), b = library id
SERVICE_LOGIN = const(50)        # a = 1 ok / 0 failed, b = login counter / failures in a row
SERVICE_COMMAND = const(51)      # a = command code, b = 0 done / protocol error code
CLOCK_SET = const(52)            # a = old RTC s, b = new RTC s
ERROR = const(60)
KEYS_CHANGED = const(53)         # a = 1 technician key | 2 fleet key, b = 1 on-pump
#                                  confirmation (first keys) / 2 logged-in key change
SERVICE_LOGOUT = const(54)       # a = 0 logout / 1 idle timeout / 2 new login, b = writes
# drug-library programming (issue 6: firmware/programming.py, docs/CONTRACTS.md)
THERAPY_CONTEXT = const(70)      # a = library id, b = (library version & 0xFFFF) << 16 | drug
#                                  id (u32 values in the i32 fields); logged immediately
#                                  before THERAPY_PROGRAMMED (or PROGRAM_REFUSED) of a program
#                                  from the library; drug id 0 = basic infusion
SOFT_LIMIT_OVERRIDE = const(71)  # a = drug id | dose unit code << 16 | side << 24 (1 below
#                                  soft min, 2 above soft max), b = dose (scaled, dose unit)
LIBRARY_CHECK_REFUSED = const(72)  # a = programming reason code, b = drug id
LOG_SEGMENT_RECYCLED = const(90)  # written by firmware/eventlog.py when the ring drops its
#                                  oldest segment: a = first sequence number still kept,
#                                  b = index of the recycled segment file

NAMES = {
    POWER_ON: "POWER_ON", POWER_OFF: "POWER_OFF",
    SELF_TEST_PASSED: "SELF_TEST_PASSED", SELF_TEST_FAILED: "SELF_TEST_FAILED",
    THERAPY_PROGRAMMED: "THERAPY_PROGRAMMED", THERAPY_STARTED: "THERAPY_STARTED",
    THERAPY_PAUSED: "THERAPY_PAUSED", THERAPY_RESUMED: "THERAPY_RESUMED",
    THERAPY_STOPPED: "THERAPY_STOPPED", THERAPY_COMPLETED: "THERAPY_COMPLETED",
    RATE_CHANGED: "RATE_CHANGED", PROGRAM_REFUSED: "PROGRAM_REFUSED",
    BOLUS_REQUESTED: "BOLUS_REQUESTED", BOLUS_GRANTED: "BOLUS_GRANTED",
    BOLUS_DENIED: "BOLUS_DENIED",
    ALARM_RAISED: "ALARM_RAISED", ALARM_ACKNOWLEDGED: "ALARM_ACKNOWLEDGED",
    ALARM_SILENCED: "ALARM_SILENCED", ALARM_CLEARED: "ALARM_CLEARED",
    ALARM_ESCALATED: "ALARM_ESCALATED",
    LIBRARY_LOADED: "LIBRARY_LOADED", LIBRARY_REJECTED: "LIBRARY_REJECTED",
    SERVICE_LOGIN: "SERVICE_LOGIN", SERVICE_COMMAND: "SERVICE_COMMAND",
    CLOCK_SET: "CLOCK_SET", ERROR: "ERROR",
    KEYS_CHANGED: "KEYS_CHANGED", SERVICE_LOGOUT: "SERVICE_LOGOUT",
}
NAMES[THERAPY_CONTEXT] = "THERAPY_CONTEXT"
NAMES[THERAPY_MODE] = "THERAPY_MODE"
NAMES[THERAPY_DELAYED] = "THERAPY_DELAYED"
NAMES[TAPER_DOWN_EARLY] = "TAPER_DOWN_EARLY"
NAMES[SOFT_LIMIT_OVERRIDE] = "SOFT_LIMIT_OVERRIDE"
NAMES[LIBRARY_CHECK_REFUSED] = "LIBRARY_CHECK_REFUSED"
NAMES[LOG_SEGMENT_RECYCLED] = "LOG_SEGMENT_RECYCLED"


def name(code):
    return NAMES.get(code, "EVENT_%d" % code)


# ---- service link (issue 9 item 1, SR-LOG-1): firmware/service.py, docs/SERVICE_LINK.md §9
SERVICE_FRAME_REJECTED = const(100)  # a = protocol error code (E_*) | command code << 8 (of
#                                  the latest such frame; 0 when the frame was undecodable),
#                                  b = error replies of that code since the previous record
#                                  of that code (the first of an episode is logged at once,
#                                  then at most one record per code per 60 s)
SERVICE_REJECTS_ENDED = const(101)  # an episode of rejected frames of one error code ended
#                                  (a whole 60 s without one): a = error code, b = error
#                                  replies of that code in the whole episode (only when > 1)
SERVICE_LOCKOUT = const(102)     # a failed login started a lockout: a = lockout s,
#                                  b = failed logins in a row
NAMES[SERVICE_FRAME_REJECTED] = "SERVICE_FRAME_REJECTED"
NAMES[SERVICE_REJECTS_ENDED] = "SERVICE_REJECTS_ENDED"
NAMES[SERVICE_LOCKOUT] = "SERVICE_LOCKOUT"


# ---- safe program entry and power-loss resume (issue 7 item 4, SR-TH-5, SR-TH-6; ----
# ---- firmware/menu.py, firmware/progress_store.py, firmware/resume_screen.py) ----
ENTRY_TENFOLD_WARNED = const(80)     # a = field (1 dose, 2 weight, 3 VTBI), b = the value
#                                  entered (dose scaled in its unit, weight g, VTBI uL): 10x
#                                  or more / a tenth or less of the value before
ENTRY_TENFOLD_CONFIRMED = const(81)  # the warned value confirmed by a second SELECT: a, b as 80
ENTRY_EDIT_REVERTED = const(82)  # an edit not confirmed within 15 s reverted: a = field,
#                                  b = the value it reverted to
POWER_LOSS_DETECTED = const(83)  # at boot: a therapy was running (a = 1) or paused (a = 2)
#                                  when the pump went down; b = uL delivered (persisted)
POWER_LOSS_RESUMED = const(84)   # the patient/nurse confirmed: a = uL delivered before,
#                                  b = uL programmed for the rest
POWER_LOSS_DISCARDED = const(85)  # the interrupted therapy discarded: a = uL delivered,
#                                  b = its VTBI uL
PROGRESS_RECORD_DAMAGED = const(86)  # neither progress slot readable at boot: a = slots
#                                  present, b = 0
NAMES[ENTRY_TENFOLD_WARNED] = "ENTRY_TENFOLD_WARNED"
NAMES[ENTRY_TENFOLD_CONFIRMED] = "ENTRY_TENFOLD_CONFIRMED"
NAMES[ENTRY_EDIT_REVERTED] = "ENTRY_EDIT_REVERTED"
NAMES[POWER_LOSS_DETECTED] = "POWER_LOSS_DETECTED"
NAMES[POWER_LOSS_RESUMED] = "POWER_LOSS_RESUMED"
NAMES[POWER_LOSS_DISCARDED] = "POWER_LOSS_DISCARDED"
NAMES[PROGRESS_RECORD_DAMAGED] = "PROGRESS_RECORD_DAMAGED"
