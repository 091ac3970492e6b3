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
