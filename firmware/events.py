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
POWER_OFF = const(2)
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
BOLUS_REQUESTED = const(20)
BOLUS_GRANTED = const(21)
BOLUS_DENIED = const(22)
ALARM_RAISED = const(30)         # a = alarm id, b = priority
ALARM_ACKNOWLEDGED = const(31)   # a = alarm id
ALARM_SILENCED = const(32)       # a = alarm id
ALARM_CLEARED = const(33)        # a = alarm id
LIBRARY_LOADED = const(40)
LIBRARY_REJECTED = const(41)
SERVICE_LOGIN = const(50)
SERVICE_COMMAND = const(51)      # a = command code
CLOCK_SET = const(52)
ERROR = const(60)

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
    LIBRARY_LOADED: "LIBRARY_LOADED", LIBRARY_REJECTED: "LIBRARY_REJECTED",
    SERVICE_LOGIN: "SERVICE_LOGIN", SERVICE_COMMAND: "SERVICE_COMMAND",
    CLOCK_SET: "CLOCK_SET", ERROR: "ERROR",
}


def name(code):
    return NAMES.get(code, "EVENT_%d" % code)
