"""Alarm manager (SR-AL-1..3): the alarm table, priorities, sounding, silence.

Owns which alarms are active, which one sounds (one at a time, the highest
priority first, IEC 60601-1-8), acknowledge and silence, and the clear rule of
each alarm.  The table below is the single place where an alarm's priority,
whether it stops delivery, and its clear condition are defined (SR-AL-3).
Every raise, acknowledge, silence and clear is written to the event log
(SR-AL-2).  It never commands the motor: the application stops delivery
through the safety core when ``stops_delivery`` is set.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from firmware import events

PRIORITY_LOW = const(1)
PRIORITY_MEDIUM = const(2)
PRIORITY_HIGH = const(3)
PRIORITY_NAMES = ("NONE", "LOW", "MEDIUM", "HIGH")

# clear conditions
CLEAR_CAUSE_GONE = const(0)   # clears by itself when the cause is gone
CLEAR_ON_ACK = const(1)       # needs an acknowledge and the cause gone
CLEAR_ON_RESTART = const(2)   # only a restart clears it (system errors)

SILENCE_MAX_MS = const(120000)      # SR-AL-2: HIGH silenced for <= 2 min
PAUSED_TOO_LONG_MS = const(120000)  # SR-AL-1: paused too long (2 min)

# alarm ids (stable: they go into the event log and the service protocol)
OCCLUSION_DOWN = const(1)
AIR_BUBBLE = const(2)
AIR_CUMULATIVE = const(3)
CORE_HEARTBEAT = const(4)
CORE_STATE = const(5)
DOOR_OPEN = const(6)
BATTERY_DEPLETED = const(7)
BATTERY_LOW = const(8)
INFUSION_COMPLETE = const(9)
INFUSION_COMPLETE_KVO = const(10)
PAUSED_TOO_LONG = const(11)
SELF_TEST_FAILED = const(12)
SERVICE_SESSION = const(13)
SYSTEM_ERROR = const(14)        # firmware exception at boot or in the cycle
MOTOR_DRIVE = const(15)         # the step generator refused a move (train overrun)
SOFT_LIMIT_OVERRIDE = const(16)  # a confirmed soft-limit dose is in use (SR-LIB-4)
# issue 7 (firmware/alarm_checks.py raises these from HAL readings and the volume tracked)
OCCLUSION_UP = const(17)        # upstream pressure below the limit while delivering
FREE_FLOW = const(18)           # the cam turns with no step commanded (runaway)
MOTOR_ENCODER = const(19)       # steps commanded, the cam encoder does not move (stall)
RESERVOIR_EMPTY = const(20)     # the volume tracked in the bag is used up
RESERVOIR_LOW = const(21)       # the volume tracked in the bag is low
SENSOR_RANGE = const(22)        # a pressure sensor reads outside its valid raw range

# id: (name, priority, stops delivery, clear condition)
TABLE = {
    OCCLUSION_DOWN: ("OCCLUSION DOWNSTREAM", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    AIR_BUBBLE: ("AIR IN LINE", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    AIR_CUMULATIVE: ("AIR IN LINE (TOTAL)", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    CORE_HEARTBEAT: ("SYSTEM ERROR: HEARTBEAT", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    CORE_STATE: ("SYSTEM ERROR: CORE", PRIORITY_HIGH, True, CLEAR_ON_RESTART),
    DOOR_OPEN: ("DOOR OPEN", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    BATTERY_DEPLETED: ("BATTERY DEPLETED", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    BATTERY_LOW: ("BATTERY LOW", PRIORITY_MEDIUM, False, CLEAR_CAUSE_GONE),
    INFUSION_COMPLETE: ("INFUSION COMPLETE", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    INFUSION_COMPLETE_KVO: ("COMPLETE - KVO", PRIORITY_MEDIUM, False, CLEAR_ON_ACK),
    PAUSED_TOO_LONG: ("PAUSED TOO LONG", PRIORITY_MEDIUM, False, CLEAR_CAUSE_GONE),
    SELF_TEST_FAILED: ("SYSTEM ERROR: SELF TEST", PRIORITY_HIGH, True, CLEAR_ON_RESTART),
    SERVICE_SESSION: ("SERVICE SESSION", PRIORITY_LOW, False, CLEAR_CAUSE_GONE),
    SYSTEM_ERROR: ("SYSTEM ERROR", PRIORITY_HIGH, True, CLEAR_ON_RESTART),
    MOTOR_DRIVE: ("SYSTEM ERROR: MOTOR DRIVE", PRIORITY_HIGH, True, CLEAR_ON_RESTART),
    # its cause is the program with the override: gone when replaced or completed
    SOFT_LIMIT_OVERRIDE: ("SOFT LIMIT OVERRIDE", PRIORITY_LOW, False, CLEAR_CAUSE_GONE),
    # cause gone: upstream pressure back above the limit (clamp opened, new bag)
    OCCLUSION_UP: ("OCCLUSION UPSTREAM", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    # cause gone: the encoder no longer moves without steps
    FREE_FLOW: ("FREE FLOW", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    # a jammed cam or slipping coupling is a device fault: service, then a restart
    MOTOR_ENCODER: ("MOTOR/ENCODER FAULT", PRIORITY_HIGH, True, CLEAR_ON_RESTART),
    # cause gone: app.reservoir_ul set again (new bag) or cleared (None)
    RESERVOIR_EMPTY: ("RESERVOIR EMPTY", PRIORITY_HIGH, True, CLEAR_ON_ACK),
    RESERVOIR_LOW: ("RESERVOIR LOW", PRIORITY_MEDIUM, False, CLEAR_CAUSE_GONE),
    SENSOR_RANGE: ("SYSTEM ERROR: SENSOR", PRIORITY_HIGH, True, CLEAR_ON_RESTART),
}

# A leading underscore makes a const() private to this module: MicroPython folds it into
# the code, with no global and no qstr on the heap (PT-8, tests/test_micropython_heap.py).
# Sound and light per priority (IEC 60601-1-8 style), in slots of SLOT_MS from the
# moment the alarm began to sound, indexed by priority (0 = none).  Built once at import:
# update() only indexes them (no allocation per cycle).
#   HIGH:   880 Hz burst of 10 pulses (3 + 2, pause, 3 + 2) every 5 s; red LED fast (2 Hz)
#   MEDIUM: 660 Hz burst of 3 pulses every 8 s; amber LED slow (0.5 Hz)
#   LOW:    440 Hz single pulse every 16 s; amber LED steady
# A slot beyond the burst's bytes is silent.  The board's cycle (100 ms) renders the
# pulses; the 1 s cycle of the fast simulation samples them.
SLOT_MS = const(100)
_BURST = const((b"",
         b"\x01\x01",
         b"\x01\x00\x01\x00\x01",
         b"\x01\x00\x01\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00"
         b"\x01\x00\x01\x00\x01\x00\x00\x00\x01\x00\x01"))
_BURST_PERIOD_SLOTS = const((1, 160, 80, 50))
_TONE_HZ = const((0, 440, 660, 880))
_LED_PERIOD_SLOTS = const((1, 1, 20, 5))       # LOW steady, MEDIUM 0.5 Hz, HIGH 2 Hz
_LED_ON_SLOTS = const((0, 1, 10, 3))
VOLUME_PCT = const(60)                 # normal sound level
VOLUME_ESCALATED_PCT = const(100)

# Escalation of an unanswered alarm (neither acknowledged nor silenced since it began
# to sound): after ESCALATE_MS[priority] a LOW alarm sounds the MEDIUM pattern, a
# MEDIUM one the HIGH pattern, both at full volume; a HIGH one goes to full volume.
# Logged when it escalates (events.ALARM_ESCALATED, b = the priority of the pattern it
# now sounds).  An acknowledge or a silence answers it: the sound returns to normal (after
# a silence the time counts again from its end, and a new escalation is logged again).
ESCALATE_MS = (0, 600000, 300000, 120000)


def name(alarm_id):
    entry = TABLE.get(alarm_id)
    return entry[0] if entry else "ALARM %d" % alarm_id


def priority(alarm_id):
    entry = TABLE.get(alarm_id)
    return entry[1] if entry else PRIORITY_HIGH


def clear_rule(alarm_id):
    entry = TABLE.get(alarm_id)
    return entry[3] if entry else CLEAR_ON_ACK


class AlarmManager:
    """Active alarms, acknowledge/silence, escalation and the buzzer/LED outputs."""

    def __init__(self, hal, log):
        self.hal = hal
        self.log = log
        # alarm id -> [raised_ms, acknowledged, cause_present, escalated]
        self.active = {}
        self.silenced_until_ms = None
        self._sounding = 0
        self._sound_top = 0          # the alarm whose pattern plays, and since when
        self._sound_start_ms = 0
        self._answered_ms = -ESCALATE_MS[PRIORITY_LOW]  # last silence (start or end)
        self.volume_pct = 0          # as driven by the last update()
        self.sound_priority = 0      # pattern played by the last update() (0 = quiet)

    def raise_alarm(self, alarm_id, now_ms):
        """Raise (or re-assert the cause of) an alarm; returns True if new."""
        entry = self.active.get(alarm_id)
        if entry is not None:
            entry[2] = True
            return False
        self.active[alarm_id] = [now_ms, False, True, False]
        self.log.append(events.ALARM_RAISED, alarm_id, priority(alarm_id))
        if self.silenced_until_ms is not None and priority(alarm_id) > self._sounding:
            self.silenced_until_ms = None   # a higher priority pre-empts a silence
        return True

    def cause_gone(self, alarm_id):
        """The condition behind an alarm has gone; clears it if its rule allows."""
        entry = self.active.get(alarm_id)
        if entry is None:
            return
        entry[2] = False
        rule = clear_rule(alarm_id)
        if rule == CLEAR_CAUSE_GONE or (rule == CLEAR_ON_ACK and entry[1]):
            self._clear(alarm_id)

    def supersede(self, alarm_id):
        """Clear an event alarm whose subject no longer exists (a new program
        replaces a completed one).  Logged as an acknowledge and a clear."""
        if alarm_id in self.active:
            self.log.append(events.ALARM_ACKNOWLEDGED, alarm_id, 1)
            self._clear(alarm_id)

    def acknowledge(self):
        """Acknowledge every active alarm; those whose cause is gone clear."""
        for alarm_id in list(self.active):
            entry = self.active[alarm_id]
            if not entry[1]:
                entry[1] = True
                self.log.append(events.ALARM_ACKNOWLEDGED, alarm_id, 0)
            rule = clear_rule(alarm_id)
            if rule == CLEAR_ON_ACK and not entry[2]:
                self._clear(alarm_id)
        self.silenced_until_ms = None

    def silence(self, now_ms):
        """Silence the sounding alarm for at most 2 minutes (SR-AL-2)."""
        if self._sounding:
            self.silenced_until_ms = now_ms + SILENCE_MAX_MS
            self._answered_ms = now_ms
            self.log.append(events.ALARM_SILENCED, self.top(), 0)

    def _clear(self, alarm_id):
        del self.active[alarm_id]
        self.log.append(events.ALARM_CLEARED, alarm_id, 0)

    def is_active(self, alarm_id):
        return alarm_id in self.active

    def top(self):
        """The alarm that sounds: highest priority, then the oldest."""
        # Field by field, no (priority, -raised_ms) key tuple and no .items(): either
        # would allocate every cycle while an alarm is active.  Priorities are >= 1.
        active = self.active
        best = 0
        best_prio = 0
        best_ms = 0
        for alarm_id in active:
            prio = priority(alarm_id)
            raised_ms = active[alarm_id][0]
            if prio > best_prio or (prio == best_prio and raised_ms < best_ms):
                best = alarm_id
                best_prio = prio
                best_ms = raised_ms
        return best

    def top_priority(self):
        """Priority of the sounding alarm, 0 when none is active."""
        top = self.top()
        return priority(top) if top else 0

    def unacknowledged(self):
        """True while an active alarm has not been acknowledged yet."""
        active = self.active
        for alarm_id in active:
            if not active[alarm_id][1]:
                return True
        return False

    def sounding(self):
        """True while an alarm sounds (not silenced), as of the last update()."""
        return self._sounding != 0 and self.silenced_until_ms is None

    def blocking_alarm(self):
        """An active alarm that stops delivery (an unknown id counts), else 0."""
        for alarm_id in self.active:
            entry = TABLE.get(alarm_id)
            if entry is None or entry[2]:
                return alarm_id
        return 0

    def blocks_delivery(self):
        """True while any active alarm stops delivery."""
        return self.blocking_alarm() != 0

    def update(self, now_ms):
        """Drive buzzer and LEDs from the sounding alarm; call every cycle.

        Table-driven (_BURST, LED_*), allocation-free: the pattern of the top alarm's
        priority (or the escalated one) from the moment it began to sound."""
        top = self.top()
        prio = priority(top) if top else 0
        self._sounding = prio
        if self.silenced_until_ms is not None and now_ms >= self.silenced_until_ms:
            self._answered_ms = self.silenced_until_ms   # unanswered again from here
            self.silenced_until_ms = None
            self._sound_start_ms = now_ms
        if top != self._sound_top:
            self._sound_top = top
            self._sound_start_ms = now_ms
        slot = (now_ms - self._sound_start_ms) // SLOT_MS
        hal = self.hal
        sound = 0
        volume = 0
        if prio and self.silenced_until_ms is None:
            sound = prio
            volume = VOLUME_PCT
            entry = self.active[top]
            since = entry[0]
            if self._answered_ms > since:
                since = self._answered_ms
            if not entry[1] and now_ms - since >= ESCALATE_MS[prio]:
                volume = VOLUME_ESCALATED_PCT
                if sound < PRIORITY_HIGH:
                    sound += 1
                if not entry[3]:
                    entry[3] = True
                    self.log.append(events.ALARM_ESCALATED, top, sound)
            else:
                entry[3] = False
            burst = _BURST[sound]
            i = slot % _BURST_PERIOD_SLOTS[sound]
            if i < len(burst) and burst[i]:
                hal.buzzer.tone(_TONE_HZ[sound], volume)
            else:
                hal.buzzer.off()
        else:
            hal.buzzer.off()
        self.sound_priority = sound
        self.volume_pct = volume
        lit = slot % _LED_PERIOD_SLOTS[prio] < _LED_ON_SLOTS[prio]
        hal.leds.set(prio == PRIORITY_HIGH and lit,
                     (prio == PRIORITY_MEDIUM or prio == PRIORITY_LOW) and lit, prio == 0)
