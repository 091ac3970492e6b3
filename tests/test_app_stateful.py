"""Stateful test of the whole pump (firmware + safety core + sim HAL + physics).

Hypothesis drives random sequences of what happens to a home pump: programming
(valid or not), start/pause, key presses, acknowledge and silence, occlusions,
bubbles, door openings, battery drain, power cuts and the passage of time.
After every step the invariants that no sequence may break are checked:

* the motor moved exactly the steps the safety core accounted for (the core is the
  only code that commands it) and never more than the VTBI (SR-CORE-2);
* an alarm that stops delivery is never active while the core delivers (SR-AL-1);
* every latched core fault has its alarm (SR-CORE-8), silence never exceeds 2 min (SR-AL-2);
* after a power cut the pump does not resume by itself (SR-TH-5, first part);
* the event log stays readable, every record verified, sequence contiguous (SR-LOG-3);
* every therapy mode (SR-TH-1) with bouncy BOLUS presses: never above the rolling-hour
  cap or the PCA maxima of the loaded program (an independent sliding sum of what the
  motor did), granted patient boluses never inside the lockout (SR-CORE-2);
* every active alarm was logged when raised (SR-AL-2).

The simulated therapy time (hours with the core delivering) is summed over the run
and written to build/stateful_therapy_hours.txt; `make test` prints it, `make soak`
runs the machine for >= 10,000 therapy-hours (tests/soak_therapy.py).
"""
import os
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import hal
import safety_core as sc
from firmware import alarms as al
from firmware import eventlog, events
from firmware.app import PumpApp
from hal.sim import RamStorage, make_sim_hal
from sim.world import World

DELIVERING = (sc.PHASE_RUNNING, sc.PHASE_KVO)
HOURS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "build", "stateful_therapy_hours.txt")
THERAPY_SECONDS = [0]        # summed over every example of the session


def record_therapy_hours():
    os.makedirs(os.path.dirname(HOURS_FILE), exist_ok=True)
    with open(HOURS_FILE, "w") as f:
        f.write("stateful whole-pump test: %.1f therapy-hours simulated\n"
                % (THERAPY_SECONDS[0] / 3600.0))


# mode specs a clinician might enter (valid and not), SR-TH-1
mode_specs = st.one_of(
    st.builds(lambda dose, rate, interval, doses: {
        "mode": "intermittent", "dose_ul": dose * 1000, "dose_rate_ul_per_h": rate * 10000,
        "interval_s": interval * 600, "doses": doses, "kvo_ul_per_h": 3000},
        st.integers(1, 100), st.integers(1, 30), st.integers(1, 12), st.integers(1, 4)),
    st.builds(lambda basal, bolus, lockout, per_h, cap: {
        "mode": "pca", "basal_ul_per_h": basal * 100, "bolus_ul": bolus * 100,
        "bolus_rate_ul_per_h": 60000, "lockout_s": lockout * 60, "max_boluses_per_h": per_h,
        "max_1h_ul": cap * 500, "max_4h_ul": cap * 1500, "vtbi_ul": 50000},
        st.integers(1, 20), st.integers(1, 20), st.integers(1, 30), st.integers(0, 6),
        st.integers(1, 10)),
    st.builds(lambda vtbi, hours, up, down: {
        "mode": "tpn", "vtbi_ul": vtbi * 10000, "duration_s": hours * 3600,
        "taper_up_s": up * 900, "taper_down_s": down * 900},
        st.integers(1, 200), st.integers(1, 24), st.integers(0, 4), st.integers(0, 4)),
    st.builds(lambda steps: {"mode": "steps", "steps": steps},
              st.lists(st.tuples(st.integers(1, 3000).map(lambda r: r * 100),
                                 st.integers(10, 5000)).map(list), min_size=1, max_size=26)),
    st.builds(lambda vol: {"mode": "prime", "volume_ul": vol * 1000}, st.integers(1, 35)),
    st.builds(lambda rate, vtbi, delay: {"mode": "continuous", "rate_ul_per_h": rate * 100,
                                         "vtbi_ul": vtbi * 100, "start_delay_s": delay},
              st.integers(1, 5000), st.integers(1, 2000), st.sampled_from([0, 0, 30, 600])),
)


class PumpMachine(RuleBasedStateMachine):
    @initialize(seed=st.integers(1, 1000), preset=st.sampled_from(["picc", "peripheral"]))
    def boot(self, seed, preset):
        self.world = World(preset=preset, seed=seed)
        self.storage = RamStorage()
        self.power_on()

    def power_on(self):
        self.hal = make_sim_hal(self.world, storage=self.storage)
        self.app = PumpApp(self.hal)
        self.app.boot()
        self.base_steps = self.world.steps_total
        self.vtbi_ul = None
        self.caps = None            # (max_1h_ul, max_4h_ul, lockout_s) of the loaded mode
        self.per_s = []             # steps the motor made each second under those caps
        self.run_1h = self.run_4h = 0   # sliding sums of per_s over 1 h and 4 h
        self.first_seq = 1
        self.last_total = self.world.steps_total
        self.max_cycle_steps = 0    # the core's most steps in one cycle (the lag bound)

    # ---- what a nurse or patient does ---------------------------------------------
    @rule(rate=st.integers(1, 5000), vtbi=st.integers(100, 20000), kvo=st.integers(0, 30),
          occ=st.sampled_from([104, 300, 600, 1034, 2000]))
    def program(self, rate, vtbi, kvo, occ):
        core = self.app.core
        counted = core.delivered_steps + core.kvo_steps   # a new program restarts the count
        try:
            self.app.program_continuous(rate * 100, vtbi, min(kvo * 100, rate * 100), occ)
            self.vtbi_ul = vtbi
            self.base_steps += counted
            self.caps = None
        except sc.CoreRefused:
            pass

    @rule(spec=mode_specs, start=st.booleans())
    def program_mode(self, spec, start):
        core = self.app.core
        counted = core.delivered_steps + core.kvo_steps
        try:
            mode = self.app.program_therapy(spec)
        except sc.CoreRefused as e:
            event("mode refused: %s" % spec["mode"])
            assert str(e)                       # every refusal says why
            return
        event("mode programmed: %s" % spec["mode"])
        self.base_steps += counted
        self.vtbi_ul = mode.total_ul
        args = mode.core_args
        self.caps = (args.get("max_1h_ul", 0), args.get("max_4h_ul", 0),
                     args.get("lockout_s", 0))
        self.per_s = []
        self.run_1h = self.run_4h = 0
        self.first_seq = self.app.log.last_seq + 1
        if start:
            self.start()

    def _visit_and_run(self, spec, hours):
        """A nurse visit (line, door, battery and faults put right, alarms acknowledged),
        a new therapy started, then hours of it (faults and presses fall in between)."""
        w = self.world
        w.clamp(False)
        w.open_door(False)
        w.battery.soc = 1.0
        w.clear_air()
        self.sensor_or_mechanism_fault("clear")
        self.app.acknowledge()
        self.program_mode(spec, True)
        self.run_seconds(hours * 3600)

    @rule(spec=mode_specs, hours=st.integers(1, 3))
    def nurse_visit_and_therapy(self, spec, hours):
        self._visit_and_run(spec, hours)

    @rule(bounces=st.integers(0, 4))
    def bolus_press(self, bounces):
        self.hal.buttons.press(hal.KEY_BOLUS, bounces=bounces)

    @rule(rate=st.integers(1, 5000), vtbi=st.integers(100, 20000), kvo=st.integers(0, 30))
    def program_and_start(self, rate, vtbi, kvo):
        self.program(rate, vtbi, kvo, 300)
        self.start()

    @rule()
    def start(self):
        try:
            self.app.start()
        except sc.CoreRefused:
            pass

    @rule()
    def pause(self):
        self.app.pause()

    @rule()
    def acknowledge(self):
        self.app.acknowledge()

    @rule(keys=st.sampled_from([hal.KEY_RUN_STOP, hal.KEY_SELECT, hal.KEY_SILENCE,
                                hal.KEY_RUN_STOP | hal.KEY_SELECT]))
    def press(self, keys):
        self.hal.buttons.press(keys)

    # ---- what happens to the line and the device ---------------------------------------
    @rule(closed=st.booleans())
    def clamp(self, closed):
        self.world.clamp(closed)

    @rule(size=st.integers(20, 300))
    def bubble(self, size):
        self.world.inject_bubble(size, distance_ul=5)

    @rule()
    def prime_air_out(self):
        self.world.clear_air()

    @rule(is_open=st.sampled_from([False, False, True]))
    def door(self, is_open):
        self.world.open_door(is_open)

    @rule(soc=st.sampled_from([1.0, 0.6, 0.2, 0.08, 0.0]))
    def battery(self, soc):
        self.world.battery.soc = soc

    @rule(which=st.sampled_from(["upstream", "jam", "free_flow", "stuck_sensor", "clear"]))
    def sensor_or_mechanism_fault(self, which):
        w = self.world
        if which == "upstream":
            w.block_upstream(True)
        elif which == "jam":
            w.jam_cam(True)
        elif which == "free_flow":
            w.free_flow(200)
        elif which == "stuck_sensor":
            w.stick_pressure("down", 4095)
        else:
            w.block_upstream(False)
            w.jam_cam(False)
            w.free_flow(0)
            w.stick_pressure("down", None)

    @rule(seconds=st.integers(1, 400))
    def time_passes(self, seconds):
        self.run_seconds(seconds)

    @rule(hours=st.integers(1, 3))
    def hours_pass(self, hours):
        self.run_seconds(hours * 3600)

    def slide(self, steps):
        """One second of motor steps into the sliding 1 h / 4 h sums, checked against the
        loaded program's caps (an independent count of what the motor did)."""
        if not self.caps:
            return
        per_s = self.per_s
        per_s.append(steps)
        self.run_1h += steps
        self.run_4h += steps
        n = len(per_s)
        if n > 3600:
            self.run_1h -= per_s[n - 3601]
        if n > 4 * 3600:
            self.run_4h -= per_s[n - 4 * 3600 - 1]
        pl = self.app.core.ustep_volume_pl
        if self.caps[0]:
            assert self.run_1h <= self.caps[0] * 1000000 // pl, (self.caps, n)
        if self.caps[1]:
            assert self.run_4h <= self.caps[1] * 1000000 // pl, (self.caps, n)

    def run_seconds(self, seconds):
        for _ in range(seconds):
            self.app.cycle()
            self.max_cycle_steps = max(self.max_cycle_steps, self.app.last_steps)
            self.world.advance(1000)
            total = self.world.steps_total
            self.slide(total - self.last_total)
            self.last_total = total
            if self.app.core.phase in DELIVERING:
                THERAPY_SECONDS[0] += 1
        record_therapy_hours()
        for alarm_id in self.app.alarms.active:
            event("alarm seen: %s" % al.name(alarm_id))     # coverage, in --hypothesis-show-statistics
        event("phase after time: %s" % sc.PHASE_NAMES[self.app.core.phase])

    @rule()
    def power_cut(self):
        self.world.pending_steps = 0          # the motor stops with the power
        self.power_on()                        # the program is gone (no resume by itself)
        assert self.app.core.phase == sc.PHASE_IDLE      # no resume by itself

    # ---- invariants ------------------------------------------------------------------
    @invariant()
    def motor_moved_only_what_the_core_accounted(self):
        """Forward: never more than the steps the core counted (SR-CORE-2); behind them
        only by the cam schedule's ledger (PT-3 flow linearisation, firmware/cam_schedule.py:
        at most one refill zone plus two cycles' steps) and the steps it dropped (a new
        program, a channel-B cut); at completion the ledger holds no counted volume (less
        than one microstep) but the cam's geometry lag.  Back: the occlusion back-off the
        core decided (SR-CORE-4), never more (the driver may still be running it)."""
        core = self.app.core
        pending = self.world.pending_steps
        back = self.app.driver.backoff_issued
        assert back <= core.field("reversed_steps")
        forward = self.world.steps_total - self.base_steps + pending + back
        counted = core.delivered_steps + core.kvo_steps
        cam = self.app.driver.cam
        assert forward <= counted                            # never ahead (SR-CORE-2)
        assert forward == counted - cam.owed - cam.dropped   # the ledger is exact
        assert 0 <= cam.owed <= (cam.rev - cam.delivery) + 2 * self.max_cycle_steps
        if core.phase == sc.PHASE_COMPLETE and not core.faults and not cam.pending():
            if cam.locked:
                assert 0 <= cam.acc < cam.rev                # counted volume delivered
            else:
                assert cam.owed == 0                         # pass-through: equal
        if self.vtbi_ul is not None:
            assert core.delivered_nl() <= self.vtbi_ul * 1000

    @invariant()
    def stopping_alarm_means_no_delivery(self):
        if self.app.alarms.blocks_delivery():
            assert self.app.core.phase not in DELIVERING, self.app.alarms.active

    @invariant()
    def latched_faults_have_alarms(self):
        faults = self.app.core.faults
        for bit, alarm_id in ((sc.FAULT_OCCLUSION_DOWN, al.OCCLUSION_DOWN),
                              (sc.FAULT_AIR_BUBBLE, al.AIR_BUBBLE),
                              (sc.FAULT_AIR_CUMULATIVE, al.AIR_CUMULATIVE),
                              (sc.FAULT_HEARTBEAT, al.CORE_HEARTBEAT)):
            if faults & bit:
                assert self.app.alarms.is_active(alarm_id)

    @invariant()
    def silence_at_most_two_minutes(self):
        until = self.app.alarms.silenced_until_ms
        if until is not None:
            assert until - self.app.now_ms() <= al.SILENCE_MAX_MS

    @invariant()
    def granted_boluses_are_outside_the_lockout(self):
        if not self.caps or not self.caps[2]:
            return
        times = [eventlog.decode(r)[3] for r in self.app.log.read(self.first_seq, 100000)
                 if eventlog.decode(r)[1] == events.BOLUS_GRANTED and
                 eventlog.decode(r)[4] == sc.BOLUS_PATIENT]
        for a, b in zip(times, times[1:]):
            assert b - a >= self.caps[2] * 1000 - self.app.cycle_ms, (a, b)

    @invariant()
    def every_active_alarm_was_logged(self):
        raised = set(eventlog.decode(r)[4] for r in self.app.log.read(1, 100000)
                     if eventlog.decode(r)[1] == events.ALARM_RAISED)
        for alarm_id in self.app.alarms.active:
            assert alarm_id in raised, al.name(alarm_id)

    @invariant()
    def log_verifies(self):
        log = self.app.log
        records = log.read(1, 100000)
        seqs = [eventlog.decode(r)[0] for r in records]
        assert seqs == list(range(log.first_seq, log.last_seq + 1))


PumpMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

TestPumpStateMachine = PumpMachine.TestCase
