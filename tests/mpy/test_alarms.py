"""Alarm manager (SR-AL-1..3): the table, one sound at a time, silence, clear rules, log."""
from firmware import alarms as al
from firmware import events
from firmware.eventlog import EventLog, decode
from hal.sim import make_sim_hal
from sim.world import World


def make():
    world = World()
    hal = make_sim_hal(world)
    log = EventLog(hal.storage, hal.clock)
    return al.AlarmManager(hal, log), hal, log


def logged(log):
    return [decode(r)[1:2] + decode(r)[4:5] for r in log.read(1, 100)]


def test_every_alarm_has_priority_action_and_clear_rule_in_one_table_SR_AL_3():
    for alarm_id, entry in al.TABLE.items():
        name, prio, stops, rule = entry
        assert name and prio in (al.PRIORITY_LOW, al.PRIORITY_MEDIUM, al.PRIORITY_HIGH)
        assert rule in (al.CLEAR_CAUSE_GONE, al.CLEAR_ON_ACK, al.CLEAR_ON_RESTART)
        if prio == al.PRIORITY_HIGH:
            assert stops, name        # SR-AL-1: HIGH alarms stop delivery
    assert al.priority(al.OCCLUSION_DOWN) == al.PRIORITY_HIGH
    assert al.priority(al.BATTERY_LOW) == al.PRIORITY_MEDIUM
    assert al.priority(al.SERVICE_SESSION) == al.PRIORITY_LOW


def test_higher_priority_sounds_first_and_preempts_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.BATTERY_LOW, 0)
    assert mgr.top() == al.BATTERY_LOW
    mgr.raise_alarm(al.OCCLUSION_DOWN, 1000)
    assert mgr.top() == al.OCCLUSION_DOWN
    mgr.update(0)
    assert hal.leds.state == (True, False, False)


def test_silence_lasts_at_most_two_minutes_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.AIR_BUBBLE, 0)
    mgr.update(0)
    assert hal.buzzer.is_on()
    mgr.silence(0)
    for t in range(0, 120000, 1000):
        mgr.update(t)
        assert not hal.buzzer.is_on()
    mgr.update(120000)
    assert hal.buzzer.is_on()


def test_ack_rule_needs_ack_and_cause_gone_SR_AL_3():
    mgr, hal, log = make()
    mgr.raise_alarm(al.OCCLUSION_DOWN, 0)
    mgr.cause_gone(al.OCCLUSION_DOWN)
    assert mgr.is_active(al.OCCLUSION_DOWN)     # no self-clearing
    mgr.acknowledge()
    assert not mgr.is_active(al.OCCLUSION_DOWN)
    mgr.raise_alarm(al.DOOR_OPEN, 0)
    mgr.acknowledge()                            # cause still there
    assert mgr.is_active(al.DOOR_OPEN)
    mgr.cause_gone(al.DOOR_OPEN)                 # acknowledged before: clears now
    assert not mgr.is_active(al.DOOR_OPEN)


def test_restart_only_alarms_survive_ack_SR_AL_3():
    mgr, hal, log = make()
    mgr.raise_alarm(al.SELF_TEST_FAILED, 0)
    mgr.cause_gone(al.SELF_TEST_FAILED)
    mgr.acknowledge()
    assert mgr.is_active(al.SELF_TEST_FAILED)
    assert mgr.blocks_delivery()


def test_cause_gone_rule_clears_by_itself():
    mgr, hal, log = make()
    mgr.raise_alarm(al.BATTERY_LOW, 0)
    mgr.cause_gone(al.BATTERY_LOW)
    assert not mgr.is_active(al.BATTERY_LOW)


def test_raise_ack_silence_clear_are_logged_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.AIR_BUBBLE, 0)
    mgr.update(0)
    mgr.silence(0)
    mgr.cause_gone(al.AIR_BUBBLE)
    mgr.acknowledge()
    kinds = [r[0] for r in logged(log)]
    assert kinds == [events.ALARM_RAISED, events.ALARM_SILENCED, events.ALARM_ACKNOWLEDGED,
                     events.ALARM_CLEARED]
    assert all(r[1] == al.AIR_BUBBLE for r in logged(log))


# SR-AL-1 as SPEC.md names each alarm -> (priority, the alarm ids that implement it)
SPEC_ALARMS = (
    ("downstream occlusion", al.PRIORITY_HIGH, (al.OCCLUSION_DOWN,)),
    ("upstream occlusion", al.PRIORITY_HIGH, (al.OCCLUSION_UP,)),
    ("air", al.PRIORITY_HIGH, (al.AIR_BUBBLE, al.AIR_CUMULATIVE)),
    ("free-flow", al.PRIORITY_HIGH, (al.FREE_FLOW,)),
    ("motor/encoder fault", al.PRIORITY_HIGH, (al.MOTOR_ENCODER, al.MOTOR_DRIVE)),
    ("reservoir empty", al.PRIORITY_HIGH, (al.RESERVOIR_EMPTY,)),
    ("battery depleted", al.PRIORITY_HIGH, (al.BATTERY_DEPLETED,)),
    ("door open", al.PRIORITY_HIGH, (al.DOOR_OPEN,)),
    ("system error (POST, watchdog, CRC, sensor out of range)", al.PRIORITY_HIGH,
     (al.SELF_TEST_FAILED, al.SENSOR_RANGE, al.SYSTEM_ERROR, al.CORE_HEARTBEAT,
      al.CORE_STATE)),
    ("infusion complete without KVO", al.PRIORITY_HIGH, (al.INFUSION_COMPLETE,)),
    ("reservoir low", al.PRIORITY_MEDIUM, (al.RESERVOIR_LOW,)),
    ("battery low", al.PRIORITY_MEDIUM, (al.BATTERY_LOW,)),
    ("infusion complete -> KVO", al.PRIORITY_MEDIUM, (al.INFUSION_COMPLETE_KVO,)),
    ("paused too long (2 min)", al.PRIORITY_MEDIUM, (al.PAUSED_TOO_LONG,)),
    ("library soft-limit override in use", al.PRIORITY_LOW, (al.SOFT_LIMIT_OVERRIDE,)),
    ("service session active", al.PRIORITY_LOW, (al.SERVICE_SESSION,)),
)


def test_every_alarm_of_the_spec_has_an_entry_in_the_table_SR_AL_1_SR_AL_3():
    covered = []
    for spec_name, prio, ids in SPEC_ALARMS:
        for alarm_id in ids:
            assert alarm_id in al.TABLE, spec_name
            name, p, stops, rule = al.TABLE[alarm_id]
            assert p == prio, (spec_name, name)
            assert stops == (prio == al.PRIORITY_HIGH), (spec_name, name)  # HIGH stops
            covered.append(alarm_id)
    assert sorted(covered) == sorted(al.TABLE), "an entry no SR-AL-1 alarm names"
    names = [entry[0] for entry in al.TABLE.values()]
    assert len(set(names)) == len(names)         # one display name per alarm
    # stable ids: they are in the event log and the service protocol
    assert (al.OCCLUSION_DOWN, al.SOFT_LIMIT_OVERRIDE, al.OCCLUSION_UP, al.SENSOR_RANGE) == \
        (1, 16, 17, 22)


def sample(mgr, hal, t0, t1, step=al.SLOT_MS):
    """Buzzer and LEDs from t0 to t1 (every slot): (pulses, freqs, volumes, led flashes)."""
    pulses = 0
    was_on = False
    freqs = set()
    volumes = set()
    red = amber = 0
    was_red = was_amber = False
    for t in range(t0, t1, step):
        mgr.update(t)
        on = hal.buzzer.is_on()
        if on:
            freqs.add(hal.buzzer.freq_hz)
            volumes.add(hal.buzzer.volume_pct)
            if not was_on:
                pulses += 1
        was_on = on
        r, a, g = hal.leds.state
        red += r and not was_red
        amber += a and not was_amber
        was_red, was_amber = r, a
    return pulses, freqs, volumes, red, amber


def test_buzzer_and_led_patterns_per_priority_SR_AL_2():
    # IEC 60601-1-8 style: HIGH 10-pulse burst, red fast; MEDIUM 3 pulses, amber slow;
    # LOW 1 pulse, amber steady (green: no alarm)
    # over two burst periods: buzzer pulses, tone, red / amber LED flashes (rising edges)
    for alarm_id, period_ms, pulses, hz, red, amber in (
            (al.OCCLUSION_DOWN, 5000, 20, 880, 20, 0),     # red 2 Hz
            (al.BATTERY_LOW, 8000, 6, 660, 0, 8),          # amber 0.5 Hz
            (al.SERVICE_SESSION, 16000, 2, 440, 0, 1)):    # amber steady: lit once
        mgr, hal, log = make()
        mgr.update(0)
        assert hal.leds.state == (False, False, True)
        mgr.raise_alarm(alarm_id, 0)
        got = sample(mgr, hal, 0, 2 * period_ms)
        assert got == (pulses, {hz}, {al.VOLUME_PCT}, red, amber), (alarm_id, got)
        assert not hal.leds.state[2]


def test_sound_starts_with_the_alarm_SR_AL_2():
    mgr, hal, log = make()
    mgr.update(1234)
    mgr.raise_alarm(al.DOOR_OPEN, 1234)
    mgr.update(1234)
    assert hal.buzzer.freq_hz == 880 and hal.leds.state == (True, False, False)


def test_higher_priority_preempts_the_sound_and_a_silence_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.PAUSED_TOO_LONG, 0)
    mgr.update(0)
    assert hal.buzzer.freq_hz == 660
    mgr.silence(100)
    mgr.update(200)
    assert not hal.buzzer.is_on()
    mgr.raise_alarm(al.OCCLUSION_UP, 300)         # HIGH: ends the silence, sounds now
    mgr.update(300)
    assert hal.buzzer.freq_hz == 880 and mgr.top() == al.OCCLUSION_UP
    assert sample(mgr, hal, 300, 5300)[0] == 10   # the HIGH burst, not the MEDIUM one
    mgr.raise_alarm(al.BATTERY_LOW, 6000)         # lower: does not take over
    mgr.update(6000)
    assert mgr.top() == al.OCCLUSION_UP


def test_one_alarm_sounds_at_a_time_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.BATTERY_LOW, 0)
    mgr.raise_alarm(al.RESERVOIR_LOW, 0)
    mgr.raise_alarm(al.SERVICE_SESSION, 0)
    pulses, freqs, volumes, red, amber = sample(mgr, hal, 0, 8000)
    assert (pulses, freqs) == (3, {660})          # one MEDIUM burst, nothing else


def escalations(log):
    return [(r[1], r[2]) for r in logged_ab(log) if r[0] == events.ALARM_ESCALATED]


def logged_ab(log):
    return [(decode(r)[1], decode(r)[4], decode(r)[5]) for r in log.read(1, 1000)]


def test_unanswered_medium_escalates_to_the_high_pattern_logged_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.PAUSED_TOO_LONG, 0)
    t_esc = al.ESCALATE_MS[al.PRIORITY_MEDIUM]
    assert sample(mgr, hal, t_esc - 8000, t_esc)[:3] == (3, {660}, {al.VOLUME_PCT})
    assert escalations(log) == []
    assert sample(mgr, hal, t_esc, t_esc + 5000)[:3] == (10, {880}, {100})
    assert escalations(log) == [(al.PAUSED_TOO_LONG, al.PRIORITY_HIGH)]   # logged once
    mgr.acknowledge()                             # answered: back to its own sound
    mgr.update(t_esc + 5000)
    assert sample(mgr, hal, t_esc + 5000, t_esc + 13000)[:3] == (3, {660}, {al.VOLUME_PCT})
    assert len(escalations(log)) == 1


def test_unanswered_low_escalates_to_the_medium_pattern_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.SOFT_LIMIT_OVERRIDE, 0)
    t_esc = al.ESCALATE_MS[al.PRIORITY_LOW]
    mgr.update(t_esc - 100)
    assert escalations(log) == []
    assert sample(mgr, hal, t_esc, t_esc + 8000)[:3] == (3, {660}, {100})
    assert escalations(log) == [(al.SOFT_LIMIT_OVERRIDE, al.PRIORITY_MEDIUM)]


def test_unanswered_high_gets_louder_after_2_min_and_silence_answers_it_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.DOOR_OPEN, 0)
    assert al.ESCALATE_MS[al.PRIORITY_HIGH] == 120000
    assert sample(mgr, hal, 0, 119900)[2] == {al.VOLUME_PCT}
    assert sample(mgr, hal, 120000, 125000)[:3] == (10, {880}, {100})
    assert escalations(log) == [(al.DOOR_OPEN, al.PRIORITY_HIGH)]
    mgr.silence(125000)                           # answered: quiet for at most 2 min
    assert sample(mgr, hal, 125000, 245000)[0] == 0
    # sounds again at its normal level, and escalates again 2 min after the silence
    assert sample(mgr, hal, 245000, 364900)[2] == {al.VOLUME_PCT}
    assert sample(mgr, hal, 365000, 370000)[2] == {100}
    assert len(escalations(log)) == 2
    kinds = [r[0] for r in logged_ab(log)]
    assert kinds == [events.ALARM_RAISED, events.ALARM_ESCALATED, events.ALARM_SILENCED,
                     events.ALARM_ESCALATED]


def test_acknowledged_alarm_does_not_escalate_SR_AL_2():
    mgr, hal, log = make()
    mgr.raise_alarm(al.DOOR_OPEN, 0)
    mgr.update(0)
    mgr.acknowledge()                             # cause still there: it keeps sounding
    assert sample(mgr, hal, 0, 400000, 1000)[2] == {al.VOLUME_PCT}
    assert escalations(log) == []
