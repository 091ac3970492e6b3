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
* the event log stays readable, every record verified, sequence contiguous (SR-LOG-3).
"""
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import hal
import safety_core as sc
from firmware import alarms as al
from firmware import eventlog
from firmware.app import PumpApp
from hal.sim import RamStorage, make_sim_hal
from sim.world import World

DELIVERING = (sc.PHASE_RUNNING, sc.PHASE_KVO)


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
        except sc.CoreRefused:
            pass

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

    @rule(seconds=st.integers(1, 400))
    def time_passes(self, seconds):
        for _ in range(seconds):
            self.app.cycle()
            self.world.advance(1000)
        for alarm_id in self.app.alarms.active:
            event("alarm seen: %s" % al.name(alarm_id))     # coverage, in --hypothesis-show-statistics
        event("phase after time: %s" % sc.PHASE_NAMES[self.app.core.phase])

    @rule()
    def power_cut(self):
        self.world.pending_steps = 0          # the motor stops with the power
        self.power_on()
        assert self.app.core.phase == sc.PHASE_IDLE      # no resume by itself

    # ---- invariants ------------------------------------------------------------------
    @invariant()
    def motor_moved_only_what_the_core_accounted(self):
        core = self.app.core
        pending = self.world.pending_steps
        assert self.world.steps_total - self.base_steps + pending == \
            core.delivered_steps + core.kvo_steps
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
    def log_verifies(self):
        log = self.app.log
        records = log.read(1, 100000)
        seqs = [eventlog.decode(r)[0] for r in records]
        assert seqs == list(range(log.first_seq, log.last_seq + 1))


PumpMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPumpStateMachine = PumpMachine.TestCase
