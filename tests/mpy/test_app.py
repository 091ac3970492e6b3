"""Firmware application on the sim HAL: boot, program, run, complete, alarms.

Portable: runs under pytest (CPython, C core when built) and under the real
MicroPython unix port (reference core) through tests/mpy/run.py.
"""
import safety_core as sc
from firmware.app import PumpApp
from firmware import alarms as al
from hal.sim import make_sim_hal
from sim.world import World


def make_pump(preset="picc", cycle_ms=1000):
    world = World(preset=preset, seed=3)
    hal = make_sim_hal(world, cycle_ms=cycle_ms)
    app = PumpApp(hal)
    assert app.boot(), app.post_results
    return app, world, hal


def run_for(app, world, seconds):
    for _ in range(seconds * 1000 // app.cycle_ms):
        app.cycle()
        world.advance(app.cycle_ms)


def test_boot_self_test_passes_and_is_logged_SR_AL_4():
    app, world, hal = make_pump()
    names = [r[0] for r in app.post_results]
    assert "air sensor" in names and "downstream pressure" in names and "watchdog" in names
    assert app.log.last_seq >= 2          # POWER_ON + SELF_TEST


def test_continuous_infusion_delivers_the_integral_of_the_rate():
    app, world, hal = make_pump()
    app.program_continuous(10000, 100000)          # 10 mL/h
    app.start()
    run_for(app, world, 600)                        # 10 min
    expected_nl = 10000 * 1000 * 600 // 3600        # 1.6667 mL
    assert abs(app.core.delivered_nl() - expected_nl) <= 16
    assert app.core.phase == sc.PHASE_RUNNING
    # the mechanism really moved that volume (pulsatile cam: within one stroke)
    assert abs(world.pumped_ul - expected_nl / 1000.0) <= 50.0


def test_refused_program_names_field_and_keeps_state_SR_CORE_1():
    app, world, hal = make_pump()
    app.program_continuous(5000, 10000)
    try:
        app.program_continuous(600000, 10000)
        assert False, "600 mL/h must be refused"
    except sc.ProgramRefused as e:
        assert "rate" in str(e) and "500.0 mL/h" in str(e)
    assert app.program[0] == 5000


def test_vtbi_complete_then_kvo_SR_CORE_2():
    app, world, hal = make_pump()
    app.program_continuous(100000, 1000, kvo_ul_per_h=1000)   # 1 mL at 100 mL/h
    app.start()
    run_for(app, world, 60)
    assert app.core.phase == sc.PHASE_KVO
    assert app.core.delivered_nl() <= 1000 * 1000
    assert app.alarms.is_active(al.INFUSION_COMPLETE_KVO)
    run_for(app, world, 3600)
    assert abs(app.core.kvo_nl() - 1000 * 1000) <= 20000     # 1 mL/h for an hour


def test_occlusion_stops_latches_and_needs_ack_SR_CORE_3_SR_CORE_8():
    app, world, hal = make_pump()
    app.program_continuous(10000, 50000, occlusion_limit_mmhg=300)
    app.start()
    run_for(app, world, 60)
    world.clamp(True)
    run_for(app, world, 600)
    assert app.alarms.is_active(al.OCCLUSION_DOWN)
    assert app.core.phase == sc.PHASE_PAUSED
    delivered = app.core.delivered_nl()
    run_for(app, world, 60)
    assert app.core.delivered_nl() == delivered       # stopped
    assert app.alarms.is_active(al.OCCLUSION_DOWN)    # never clears by itself
    world.clamp(False)
    run_for(app, world, 30)
    assert app.alarms.is_active(al.OCCLUSION_DOWN)    # not even once the line is open
    app.acknowledge()
    assert not app.alarms.is_active(al.OCCLUSION_DOWN)
    app.start()
    run_for(app, world, 60)
    assert app.core.delivered_nl() > delivered


def test_occlusion_by_trend_well_below_the_threshold_SR_CORE_3_PT_4():
    """1 mL/h at the highest threshold (1034 mmHg, ~55 min by threshold alone): the
    pressure rise per turn of a closed line stops the pump within 5 min, far below it."""
    app, world, hal = make_pump()
    app.program_continuous(1000, 50000, occlusion_limit_mmhg=1034)
    app.start()
    run_for(app, world, 600)
    world.clamp(True)
    t = 0
    while t < 300 and not app.alarms.is_active(al.OCCLUSION_DOWN):
        run_for(app, world, 1)
        t += 1
    assert app.alarms.is_active(al.OCCLUSION_DOWN) and t < 300, t
    assert world.downstream_mmhg < 100


def test_back_off_relieves_the_line_and_keeps_the_accounting_SR_CORE_4():
    """After an occlusion stop the motor runs back what filled the closed line: its
    pressure falls back near the venous, the reverse steps are counted, the volume given
    stays counted (an occlusion can only under-deliver)."""
    app, world, hal = make_pump()
    app.program_continuous(10000, 50000, occlusion_limit_mmhg=300)
    app.start()
    run_for(app, world, 120)
    world.clamp(True)
    run_for(app, world, 120)
    assert app.alarms.is_active(al.OCCLUSION_DOWN)
    reversed_steps = app.core.field("reversed_steps")
    assert reversed_steps > 0 and app.driver.backoff_issued == reversed_steps
    # forward steps: the core's count less the cam schedule's ledger (PT-3), never more
    cam = app.driver.cam
    forward = world.steps_total + reversed_steps
    assert forward == app.core.delivered_steps - cam.owed - cam.dropped
    assert 0 <= app.core.delivered_steps - forward <= (cam.rev - cam.delivery) + 2 * 178
    assert world.downstream_mmhg < 25     # ~50 at the stop; the release bolus: PT-4 bench
    assert not app.alarms.is_active(al.FREE_FLOW)      # the back-off's pulses are expected


def test_air_bubble_stops_SR_CORE_5():
    app, world, hal = make_pump(preset="peripheral")
    app.program_continuous(100000, 100000, bubble_limit_ul=100)
    app.start()
    run_for(app, world, 30)
    world.inject_bubble(150)
    run_for(app, world, 60)
    assert app.alarms.is_active(al.AIR_BUBBLE)
    assert app.core.phase == sc.PHASE_PAUSED


def test_pause_and_resume_keeps_volume():
    app, world, hal = make_pump()
    app.program_continuous(20000, 100000)
    app.start()
    run_for(app, world, 180)
    app.pause()
    v = app.core.delivered_nl()
    run_for(app, world, 60)
    assert app.core.delivered_nl() == v
    app.start()
    run_for(app, world, 180)
    assert abs(app.core.delivered_nl() - 20000 * 1000 * 360 // 3600) <= 16


def test_paused_too_long_raises_medium_alarm_SR_AL_1():
    app, world, hal = make_pump()
    app.program_continuous(20000, 100000)
    app.start()
    run_for(app, world, 10)
    app.pause()
    run_for(app, world, 130)
    assert app.alarms.is_active(al.PAUSED_TOO_LONG)
    assert al.priority(al.PAUSED_TOO_LONG) == al.PRIORITY_MEDIUM


def test_status_reports_what_is_running():
    app, world, hal = make_pump()
    app.program_continuous(10000, 20000)
    app.start()
    run_for(app, world, 36)
    st = app.status()
    assert st["phase"] == sc.PHASE_RUNNING
    assert st["rate_ul_per_h"] == 10000 and st["vtbi_ul"] == 20000
    assert abs(st["delivered_nl"] - 100000) <= 16
    assert st["alarm"] == 0


def test_service_port_failure_never_interrupts_delivery_SR_SVC_1():
    app, world, hal = make_pump()

    def broken(max_bytes):
        raise OSError(5)
    hal.service_port.read = broken
    app.program_continuous(10000, 50000)
    app.start()
    run_for(app, world, 120)
    assert app.core.phase == sc.PHASE_RUNNING
    assert abs(app.core.delivered_nl() - 10000 * 1000 * 120 // 3600) <= 16
    from firmware import events
    from firmware.eventlog import decode
    errors = [decode(r) for r in app.log.read(1, 100) if decode(r)[1] == events.ERROR]
    assert len(errors) == 1          # logged once, not every cycle


def test_power_off_is_logged_at_the_next_power_on_SR_LOG_1():
    """No orderly shutdown exists (battery pulled, reset): the next boot logs the end of
    the previous run, with its uptime at its last record."""
    from firmware import events
    from firmware.eventlog import decode
    from hal.sim import RamStorage
    storage = RamStorage()
    world = World(preset="picc", seed=3)
    app = PumpApp(make_sim_hal(world, storage=storage))
    app.boot()
    app.program_continuous(10000, 5000)
    app.start()
    run_for(app, world, 90)
    app2 = PumpApp(make_sim_hal(world, storage=storage))     # the battery was pulled
    app2.boot()
    recs = [decode(r) for r in app2.log.read(1, 10000)]
    types = [r[1] for r in recs]
    i = types.index(events.POWER_OFF)
    assert types[i + 1] == events.POWER_ON and types.count(events.POWER_ON) == 2
    assert recs[i][4] == 1 and recs[i][5] == recs[i - 1][3] // 1000
    assert types.count(events.POWER_OFF) == 1                # the first boot had nothing to end
