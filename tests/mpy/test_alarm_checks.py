"""Every SR-AL-1 alarm raised by a fault injected in the simulated world (or the sim HAL),
then its clear condition of the one table (SR-AL-3), on the application over the sim HAL.

Portable: plain ``def test_*():`` run by pytest and by tests/mpy/run.py under MicroPython.
The LOW alarms have theirs next to their feature: soft-limit override in
tests/mpy/test_programming.py (``..._SR_AL_1`` / ``..._SR_AL_3``), the service session
in tests/mpy/test_service_auth.py (called from here as well).
"""
import safety_core as sc
from firmware import alarm_checks as ac
from firmware import alarms as al
from firmware import events
from firmware.app import PumpApp
from firmware.eventlog import decode
from hal.sim import make_sim_hal
from sim.world import World
from tests.mpy.test_app import make_pump, run_for

_ALARM_EVENTS = (events.ALARM_RAISED, events.ALARM_ACKNOWLEDGED, events.ALARM_SILENCED,
                 events.ALARM_CLEARED, events.ALARM_ESCALATED)


def alarm_log(app, alarm_id):
    """(code, alarm id) of every alarm record of ``alarm_id`` in the event log."""
    out = []
    for r in app.log.read(1, 100000):
        rec = decode(r)
        if rec[1] in _ALARM_EVENTS and rec[4] == alarm_id:
            out.append(rec[1])
    return out


def running(rate_ul_per_h=10000, vtbi_ul=100000, seconds=30, **kw):
    app, world, hal = make_pump(**kw)
    app.program_continuous(rate_ul_per_h, vtbi_ul)
    app.start()
    run_for(app, world, seconds)
    assert app.core.phase == sc.PHASE_RUNNING and not app.alarms.active, app.alarms.active
    return app, world, hal


def restart(hal):
    """Power cycle: a new application over the same world and storage."""
    app = PumpApp(hal)
    assert app.boot(), app.post_results
    return app


def assert_stopped(app, alarm_id):
    assert app.alarms.is_active(alarm_id), app.alarms.active
    assert app.core.phase == sc.PHASE_PAUSED
    assert app.alarms.blocks_delivery()
    try:
        app.start()
        assert False, "start must be refused while %s is active" % al.name(alarm_id)
    except sc.CoreRefused:
        pass


def assert_clears_on_ack_when_gone(app, world, alarm_id, remove_cause, settle_s=3,
                                   core_fault=False):
    """CLEAR_ON_ACK: neither the acknowledge alone nor the cause gone alone clears it.
    A safety-core fault is latched in the core (SR-CORE-8): it needs an acknowledge after
    its cause has gone; the application's own alarms clear once both have happened."""
    app.acknowledge()
    run_for(app, world, settle_s)
    assert app.alarms.is_active(alarm_id)            # cause still there
    remove_cause()
    run_for(app, world, settle_s)
    if core_fault:
        assert app.alarms.is_active(alarm_id)        # no fault clears itself
        app.acknowledge()
    assert not app.alarms.is_active(alarm_id)        # acknowledged before: clears now
    logged = [c for c in alarm_log(app, alarm_id) if c != events.ALARM_ESCALATED]
    assert logged == [events.ALARM_RAISED, events.ALARM_ACKNOWLEDGED, events.ALARM_CLEARED]
    app.start()
    assert app.core.phase == sc.PHASE_RUNNING


# ---- HIGH: downstream / upstream occlusion ----------------------------------------------
def test_occlusion_down_raised_by_a_closed_downstream_clamp_SR_AL_1():
    app, world, hal = running()
    world.clamp(True)
    run_for(app, world, 400)
    assert_stopped(app, al.OCCLUSION_DOWN)


def test_occlusion_down_after_the_back_off_SR_AL_3_SR_CORE_4():
    """After the stop the motor backs off (SR-CORE-4): the line's pressure is relieved, so
    the pressure no longer tells whether it is still closed.  The alarm never clears by
    itself; an acknowledge clears it; a restart into a line still closed stops again
    within the PT-4 time, and once the line is open delivery goes on."""
    app, world, hal = running()
    world.clamp(True)
    run_for(app, world, 300)
    assert_stopped(app, al.OCCLUSION_DOWN)
    assert app.driver.backoff_issued > 0
    assert world.downstream_mmhg < 30                # relieved (rise to the stop: ~50)
    run_for(app, world, 30)
    assert app.alarms.is_active(al.OCCLUSION_DOWN)   # no fault clears itself
    app.acknowledge()
    assert not app.alarms.is_active(al.OCCLUSION_DOWN)
    app.start()                                      # the line is still closed
    run_for(app, world, 300)
    assert_stopped(app, al.OCCLUSION_DOWN)
    world.clamp(False)
    run_for(app, world, 3)
    app.acknowledge()
    logged = [c for c in alarm_log(app, al.OCCLUSION_DOWN) if c != events.ALARM_ESCALATED]
    assert logged == [events.ALARM_RAISED, events.ALARM_ACKNOWLEDGED, events.ALARM_CLEARED] * 2
    delivered = app.core.delivered_nl()
    app.start()
    run_for(app, world, 300)
    assert app.core.phase == sc.PHASE_RUNNING and not app.alarms.active
    assert app.core.delivered_nl() > delivered


def test_occlusion_up_raised_by_a_closed_upstream_clamp_or_empty_bag_SR_AL_1():
    app, world, hal = running()
    delivered = app.core.delivered_nl()
    world.block_upstream(True)
    run_for(app, world, 40)
    assert_stopped(app, al.OCCLUSION_UP)
    assert app.checks.last_upstream_mmhg < ac.UP_OCCLUSION_MMHG
    assert app.core.delivered_nl() - delivered <= 40 * 10000 * 1000 // 3600


def test_occlusion_up_clears_on_ack_once_the_clamp_opens_SR_AL_3():
    app, world, hal = running()
    world.block_upstream(True)
    run_for(app, world, 40)
    assert_clears_on_ack_when_gone(app, world, al.OCCLUSION_UP,
                                   lambda: world.block_upstream(False))


def test_no_upstream_occlusion_at_rest_with_sensor_noise_SR_AL_1():
    app, world, hal = running(rate_ul_per_h=500000, seconds=600, preset="peripheral")
    assert not app.alarms.active


# ---- HIGH: air ------------------------------------------------------------------------
def test_air_bubble_raised_and_cleared_on_ack_after_priming_SR_AL_1_SR_AL_3():
    app, world, hal = running(100000, preset="peripheral")
    world.inject_bubble(150)
    run_for(app, world, 30)
    assert_stopped(app, al.AIR_BUBBLE)
    assert_clears_on_ack_when_gone(app, world, al.AIR_BUBBLE, world.clear_air, core_fault=True)


def test_air_cumulative_raised_and_cleared_on_ack_SR_AL_1_SR_AL_3():
    app, world, hal = running(300000, preset="peripheral")
    for i in range(16):                       # 16 x 80 uL, each below the 100 uL limit
        world.inject_bubble(80, 200 * i)
    run_for(app, world, 90)
    assert_stopped(app, al.AIR_CUMULATIVE)
    assert not app.alarms.is_active(al.AIR_BUBBLE)
    world.clear_air()
    app.acknowledge()
    assert not app.alarms.is_active(al.AIR_CUMULATIVE)
    app.start()
    assert app.core.phase == sc.PHASE_RUNNING


# ---- HIGH: free flow, motor / encoder ----------------------------------------------------
def test_free_flow_raised_when_the_cam_turns_without_steps_SR_AL_1():
    app, world, hal = running()
    world.free_flow(1600)                    # half a cam turn a second, by itself
    run_for(app, world, 10)
    assert_stopped(app, al.FREE_FLOW)
    assert not world.motor_enabled           # channel B cut the driver too


def test_free_flow_raised_when_idle_SR_AL_1():
    app, world, hal = make_pump()
    world.free_flow(3200)
    run_for(app, world, 5)
    assert app.alarms.is_active(al.FREE_FLOW)


def test_free_flow_clears_on_ack_once_the_cam_is_still_SR_AL_3():
    app, world, hal = running()
    world.free_flow(1600)
    run_for(app, world, 10)
    app.acknowledge()
    assert app.alarms.is_active(al.FREE_FLOW)
    world.free_flow(0)
    run_for(app, world, 30)
    assert app.alarms.is_active(al.FREE_FLOW)       # quiet for less than a minute
    run_for(app, world, ac.FREE_FLOW_QUIET_MS // 1000)
    # channel B's cause is gone; channel A's latch (SR-CORE-6) needs its own acknowledge
    assert app.alarms.is_active(al.FREE_FLOW)
    assert app.acknowledge() == 0
    assert not app.alarms.is_active(al.FREE_FLOW)
    app.start()
    run_for(app, world, 120)
    assert app.core.phase == sc.PHASE_RUNNING and not app.alarms.active


def test_motor_encoder_raised_by_a_jammed_cam_SR_AL_1():
    app, world, hal = running(100000)
    world.jam_cam(True)
    run_for(app, world, 10)
    assert_stopped(app, al.MOTOR_ENCODER)
    assert not world.motor_enabled


def test_motor_encoder_raised_at_the_lowest_rate_SR_AL_1():
    app, world, hal = running(1000, seconds=1)      # 1 mL/h: a cam turn every 3 min
    world.jam_cam(True)
    run_for(app, world, 600)
    assert app.alarms.is_active(al.MOTOR_ENCODER)


def test_motor_encoder_clears_only_after_restart_SR_AL_3():
    app, world, hal = running(100000)
    world.jam_cam(True)
    run_for(app, world, 10)
    world.jam_cam(False)
    app.acknowledge()
    run_for(app, world, 5)
    assert_stopped(app, al.MOTOR_ENCODER)           # ack and cause gone: still there
    app = restart(hal)
    assert not app.alarms.active
    app.program_continuous(100000, 100000)
    app.start()
    run_for(app, world, 60)
    assert app.core.phase == sc.PHASE_RUNNING and not app.alarms.active


def test_motor_drive_raised_by_a_refused_move_and_clears_after_restart_SR_AL_1_SR_AL_3():
    app, world, hal = running()
    hal.stepper.refused = 1
    run_for(app, world, 2)
    assert_stopped(app, al.MOTOR_DRIVE)
    app.acknowledge()
    assert app.alarms.is_active(al.MOTOR_DRIVE)
    hal.stepper.refused = 0
    app = restart(hal)
    assert not app.alarms.active


# ---- HIGH: reservoir empty, battery depleted, door ------------------------------------
def test_reservoir_empty_raised_from_the_volume_tracked_SR_AL_1():
    app, world, hal = make_pump()
    app.program_continuous(360000, 100000)           # 100 uL/s
    app.reservoir_ul = 10000
    app.start()
    run_for(app, world, 120)
    assert_stopped(app, al.RESERVOIR_EMPTY)
    assert 10000 <= app.core.delivered_ul() <= 10100  # stopped within the cycle it emptied


def test_reservoir_empty_clears_on_ack_when_a_new_bag_is_entered_SR_AL_3():
    app, world, hal = make_pump()
    app.program_continuous(360000, 100000)
    app.reservoir_ul = 10000
    app.start()
    run_for(app, world, 120)

    def new_bag():
        app.reservoir_ul += 250000
    assert_clears_on_ack_when_gone(app, world, al.RESERVOIR_EMPTY, new_bag)
    assert not app.alarms.is_active(al.RESERVOIR_LOW)


def test_no_reservoir_alarm_when_the_volume_is_unknown_SR_AL_1():
    app, world, hal = make_pump()
    app.program_continuous(360000, 20000)
    app.start()
    run_for(app, world, 120)
    assert app.reservoir_ul is None
    assert not app.alarms.is_active(al.RESERVOIR_EMPTY)
    assert not app.alarms.is_active(al.RESERVOIR_LOW)


def test_reservoir_low_threshold_is_10_percent_or_30_min_whichever_larger_SR_AL_1():
    assert ac.reservoir_low_ul(100000, 1000) == 10000     # 10 % of 100 mL
    assert ac.reservoir_low_ul(100000, 36000) == 18000    # 30 min at 36 mL/h
    assert ac.reservoir_low_ul(0, 0) == 0


def test_reservoir_low_raised_from_the_volume_tracked_SR_AL_1():
    app, world, hal = make_pump()
    app.program_continuous(36000, 100000)            # 10 uL/s; low below 18 mL left
    app.reservoir_ul = 20000
    app.start()
    run_for(app, world, 150)
    assert not app.alarms.is_active(al.RESERVOIR_LOW)
    run_for(app, world, 100)                         # 2.5 mL delivered: 17.5 mL left
    assert app.alarms.is_active(al.RESERVOIR_LOW)
    assert al.priority(al.RESERVOIR_LOW) == al.PRIORITY_MEDIUM
    assert app.core.phase == sc.PHASE_RUNNING        # MEDIUM: delivery goes on


def test_reservoir_low_clears_by_itself_with_a_new_bag_SR_AL_3():
    app, world, hal = make_pump()
    app.program_continuous(36000, 100000)
    app.reservoir_ul = 15000
    app.start()
    run_for(app, world, 2)
    assert app.alarms.is_active(al.RESERVOIR_LOW)
    app.reservoir_ul = 500000
    run_for(app, world, 1)
    assert not app.alarms.is_active(al.RESERVOIR_LOW)
    assert alarm_log(app, al.RESERVOIR_LOW) == [events.ALARM_RAISED, events.ALARM_CLEARED]


def test_battery_depleted_raised_and_cleared_on_ack_once_charged_SR_AL_1_SR_AL_3():
    app, world, hal = running()
    world.battery.soc = 0.0
    run_for(app, world, 2)
    assert_stopped(app, al.BATTERY_DEPLETED)
    assert app.alarms.is_active(al.BATTERY_LOW)
    assert app.status()["battery_min_left"] == 0

    def charge():
        world.battery.soc = 0.8
    assert_clears_on_ack_when_gone(app, world, al.BATTERY_DEPLETED, charge)
    assert not app.alarms.is_active(al.BATTERY_LOW)


def test_battery_low_raised_with_time_remaining_shown_and_clears_by_itself_SR_AL_1_SR_AL_3():
    app, world, hal = running()
    world.battery.soc = 0.05
    run_for(app, world, 10)
    assert app.alarms.is_active(al.BATTERY_LOW)
    assert app.core.phase == sc.PHASE_RUNNING        # MEDIUM: delivery goes on
    left = app.status()["battery_min_left"]
    assert 0 < left < 400, left
    h, m = left // 60, left % 60
    assert ("B %dh%02dm" % (h, m)) in " ".join(hal.display.lines), hal.display.lines
    world.battery.soc = 0.5
    run_for(app, world, 1)
    assert not app.alarms.is_active(al.BATTERY_LOW)
    assert alarm_log(app, al.BATTERY_LOW) == [events.ALARM_RAISED, events.ALARM_CLEARED]


def test_battery_time_remaining_follows_the_cell_and_the_draw_SR_AL_1():
    for rate in (10000, 500000):
        app, world, hal = make_pump(preset="peripheral")
        world.battery.soc = 0.5
        app.program_continuous(rate, 9000000)
        app.start()
        run_for(app, world, 130)                     # two draw windows
        # the sim cell's own figures (sim/battery.py): charge left over its draw
        b = world.battery
        duty = rate / 50.0 * 3200 / 3600 / 20000.0
        true_min = b.soc * b.capacity_mah / (b.idle_ma + b.motor_ma * duty) * 60
        est = app.status()["battery_min_left"]
        assert abs(est - true_min) <= true_min * 0.05, (rate, est, true_min)


def test_door_open_raised_and_cleared_on_ack_once_closed_SR_AL_1_SR_AL_3():
    app, world, hal = running()
    world.open_door()
    run_for(app, world, 1)
    assert_stopped(app, al.DOOR_OPEN)
    assert_clears_on_ack_when_gone(app, world, al.DOOR_OPEN, lambda: world.open_door(False))


# ---- HIGH: system errors (POST, sensor out of range, firmware exception, heartbeat) -------
def test_self_test_failure_raised_at_boot_and_cleared_only_by_restart_SR_AL_1_SR_AL_3():
    world = World(seed=3)
    hal = make_sim_hal(world)
    hal.air.self_test_ok = False                     # air detector does not follow its input
    app = PumpApp(hal)
    assert not app.boot()
    assert app.alarms.is_active(al.SELF_TEST_FAILED) and app.alarms.blocks_delivery()
    app.acknowledge()
    assert app.alarms.is_active(al.SELF_TEST_FAILED)
    hal.air.self_test_ok = True                      # repaired: a restart clears it
    app = restart(hal)
    assert not app.alarms.active


def test_sensor_range_raised_by_a_stuck_downstream_sensor_SR_AL_1():
    app, world, hal = running()
    world.stick_pressure("down", 0)
    run_for(app, world, ac.SENSOR_BAD_CYCLES + 1)
    assert_stopped(app, al.SENSOR_RANGE)
    assert not world.motor_enabled


def test_sensor_range_raised_by_a_stuck_upstream_sensor_SR_AL_1():
    app, world, hal = running()
    world.stick_pressure("up", 4095)
    run_for(app, world, ac.SENSOR_BAD_CYCLES + 1)
    assert_stopped(app, al.SENSOR_RANGE)


def test_sensor_range_clears_only_after_restart_SR_AL_3():
    app, world, hal = running()
    world.stick_pressure("up", 0)
    run_for(app, world, 5)
    world.stick_pressure("up", None)
    app.acknowledge()
    run_for(app, world, 5)
    assert_stopped(app, al.SENSOR_RANGE)
    app = restart(hal)
    assert not app.alarms.active


def test_system_error_raised_by_a_firmware_exception_and_cleared_by_restart_SR_AL_1_SR_AL_3():
    from firmware import main
    app, world, hal = running()
    healthy = hal.door.closed

    def broken():
        raise OSError(5)
    hal.door.closed = broken
    main.run_cycles(app, 1000, hal.clock.ticks_ms, hal.clock.sleep_ms, cycles=1)
    assert_stopped(app, al.SYSTEM_ERROR)
    hal.door.closed = healthy
    app.acknowledge()
    assert app.alarms.is_active(al.SYSTEM_ERROR)
    app = restart(hal)
    assert not app.alarms.active


def test_core_heartbeat_raised_by_a_stalled_application_cleared_on_ack_SR_AL_1_SR_AL_3():
    from tests.mpy.test_dose_driver import make, run
    app, world, timer, lock = make()
    app.program_continuous(36000, 100000)
    app.start()
    run(app, world, timer, 3)
    run(app, world, timer, 2, app_alive=False)       # the application hangs > 1 s
    run(app, world, timer, 1)
    assert_stopped(app, al.CORE_HEARTBEAT)
    app.acknowledge()                                # the cause went with the stall
    assert not app.alarms.is_active(al.CORE_HEARTBEAT)


def test_core_state_raised_by_corrupted_core_memory_cleared_only_by_restart_SR_AL_1_SR_AL_3():
    world = World(seed=3)
    hal = make_sim_hal(world)
    app = PumpApp(hal, core=sc.SafetyCore(hal.board.USTEP_VOLUME_PL, backend="reference"))
    assert app.boot()
    app.program_continuous(10000, 100000)
    app.start()
    run_for(app, world, 5)
    app.core._core.magic = 0                         # RAM corruption of the core's state
    run_for(app, world, 2)
    assert app.alarms.is_active(al.CORE_STATE) and app.alarms.blocks_delivery()
    steps = world.steps_total
    run_for(app, world, 10)
    assert world.steps_total == steps                # the core commands nothing more
    app.acknowledge()
    assert app.alarms.is_active(al.CORE_STATE)
    app = restart(hal)
    assert not app.alarms.active


# ---- HIGH / MEDIUM: infusion complete ------------------------------------------------------
def test_infusion_complete_without_kvo_raised_and_cleared_on_ack_SR_AL_1_SR_AL_3():
    app, world, hal = make_pump()
    app.program_continuous(100000, 1000)
    app.start()
    run_for(app, world, 60)
    assert app.alarms.is_active(al.INFUSION_COMPLETE)
    assert al.priority(al.INFUSION_COMPLETE) == al.PRIORITY_HIGH
    run_for(app, world, 5)
    assert app.alarms.is_active(al.INFUSION_COMPLETE)   # never clears by itself
    app.acknowledge()
    assert not app.alarms.is_active(al.INFUSION_COMPLETE)


def test_infusion_complete_kvo_raised_and_cleared_on_ack_SR_AL_1_SR_AL_3():
    app, world, hal = make_pump()
    app.program_continuous(100000, 1000, kvo_ul_per_h=1000)
    app.start()
    run_for(app, world, 60)
    assert app.alarms.is_active(al.INFUSION_COMPLETE_KVO)
    assert app.core.phase == sc.PHASE_KVO                # MEDIUM: KVO goes on
    app.acknowledge()
    assert not app.alarms.is_active(al.INFUSION_COMPLETE_KVO)


# ---- MEDIUM: paused too long ----------------------------------------------------------------
def test_paused_too_long_raised_after_2_min_and_cleared_on_resume_SR_AL_1_SR_AL_3():
    app, world, hal = running()
    app.pause()
    run_for(app, world, 110)
    assert not app.alarms.is_active(al.PAUSED_TOO_LONG)
    run_for(app, world, 15)
    assert app.alarms.is_active(al.PAUSED_TOO_LONG)
    app.start()
    assert not app.alarms.is_active(al.PAUSED_TOO_LONG)
    assert alarm_log(app, al.PAUSED_TOO_LONG) == [events.ALARM_RAISED, events.ALARM_CLEARED]


# ---- LOW: service session (soft-limit override: tests/mpy/test_programming.py) --------------
def test_service_session_raised_by_a_login_cleared_when_it_ends_SR_AL_1_SR_AL_3():
    from tests.mpy.test_service_auth import test_session_times_out_and_shows_a_low_alarm_SR_SVC_2
    test_session_times_out_and_shows_a_low_alarm_SR_SVC_2()


# ---- SR-AL-2: every raise, acknowledge, silence, clear (and escalation) logged -------------
def test_raise_silence_ack_clear_and_escalation_logged_by_the_app_SR_AL_2():
    app, world, hal = running()
    world.open_door()
    run_for(app, world, 1)
    app.silence()
    run_for(app, world, 120 + 121)       # silence ends, then 2 min more unanswered
    assert hal.buzzer.volume_pct == al.VOLUME_ESCALATED_PCT or not hal.buzzer.is_on()
    app.acknowledge()
    world.open_door(False)
    run_for(app, world, 1)
    assert alarm_log(app, al.DOOR_OPEN) == [
        events.ALARM_RAISED, events.ALARM_SILENCED, events.ALARM_ESCALATED,
        events.ALARM_ACKNOWLEDGED, events.ALARM_CLEARED]


def test_alarm_checks_run_is_the_one_call_in_the_cycle():
    app, world, hal = make_pump()
    calls = []
    real = app.checks.run

    def spy(now):
        calls.append(now)
        real(now)
    app.checks.run = spy
    run_for(app, world, 3)
    assert calls == [0, 1000, 2000]
