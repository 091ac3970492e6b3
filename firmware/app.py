"""The pump application (channel B): boot, program, run, alarms, log, service.

Owns the control cycle: every ``board.CYCLE_MS`` it samples the sensors
through the HAL and hands them with a fresh heartbeat to the dose driver
(``firmware/dose_driver.py``: the core ticks inside the cycle in the sim, in
a 10 ms timer IRQ on the device, and only the core's steps reach the motor),
turns core faults and HAL conditions (door, battery) into alarms, answers
the service port and feeds the watchdog.  It never decides motor steps
itself: only the safety core does; the application can only stop delivery
(``core.pause()``) and cut the driver enable line.

Therapy modes (continuous, intermittent, PCA, TPN, step profile, prime, delayed
start) are small modules behind one interface in firmware/therapy/: the
application loads a mode's plan into the core, calls ``mode.on_cycle`` once per
cycle and passes the BOLUS key to the core through ``request_bolus``; it never
switches over modes.  Allocation-free on the per-cycle path except when an event
is logged.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from firmware import alarms as al
from firmware import events
from firmware.dose_driver import BatchDoseDriver
from firmware.eventlog import EventLog
from firmware.selftest import failures, run_post
from firmware.keystore import KeyStore
from firmware.library_store import LibraryStore
from firmware.progress_store import ProgressStore
from firmware.service import MODEL, PhysicalConfirm, ServiceServer
from firmware import ui
from hal import KEY_BOLUS, KEY_DOWN, KEY_RUN_STOP, KEY_SELECT, KEY_SILENCE, KEY_UP  # key map

KEY_CLINICIAN = KEY_UP | KEY_DOWN    # pressed together: clinician access
CLINICIAN_ACCESS_MS = const(60000)   # the programming menu can be opened for 1 min after

DEFAULT_OCCLUSION_LIMIT_MMHG = const(300)   # ~5.8 psi, mid-range default
DEFAULT_BUBBLE_LIMIT_UL = const(100)        # SR-CORE-5 default
ERR_SERVICE = const(1)                      # events.ERROR argument a: what failed
ERR_DISPLAY = const(2)
ERR_SYSTEM = const(4)                       # exception at boot or in the cycle

# core fault bit -> alarm id
_FAULT_ALARMS = (
    (sc.FAULT_OCCLUSION_DOWN, al.OCCLUSION_DOWN),
    (sc.FAULT_AIR_BUBBLE, al.AIR_BUBBLE),
    (sc.FAULT_AIR_CUMULATIVE, al.AIR_CUMULATIVE),
    (sc.FAULT_HEARTBEAT, al.CORE_HEARTBEAT),
    (sc.FAULT_MOTION_STALL, al.MOTOR_ENCODER),     # SR-CORE-6: under-infusion
    (sc.FAULT_MOTION_RUNAWAY, al.FREE_FLOW),       # SR-CORE-6: over-infusion
    (sc.FAULT_STATE, al.CORE_STATE),
)


class PumpApp:
    """One pump: a HAL, a safety core, alarms, the event log and the service port."""

    therapy = None      # firmware.programming.Plan of a program from the library, else None
    mode = None         # firmware.therapy.Therapy of the loaded program, None for a basic
    #                     program_continuous (tests, the simple scenarios)
    menu = None         # firmware.menu.Menu, made when the buttons first open it
    clinician_until_ms = -1   # SPEC 1: the patient never reaches a menu that changes therapy

    def __init__(self, hal, core=None, log=None, driver=None):
        self.hal = hal
        board = hal.board
        self.core = core if core is not None else sc.SafetyCore(board.USTEP_VOLUME_PL)
        # SR-CORE-6: the core checks the cam encoder against the steps it commands
        ppr = hal.encoder.pulses_per_rev
        self.core.set_motion_check(board.USTEPS_PER_REV // ppr if ppr else 0)
        self.cycle_ms = board.CYCLE_MS
        # who ticks the core: this cycle (sim) or a 10 ms timer IRQ (device)
        self.driver = driver if driver is not None else BatchDoseDriver(
            self.core, hal.stepper, self.cycle_ms, board, hal.encoder.pulses_per_rev)
        self.log = log if log is not None else EventLog(hal.storage, hal.clock)
        self.alarms = al.AlarmManager(hal, self.log)
        # service link (issue 6): keys, A/B library slots, SELECT confirms the first keys
        self.keys = KeyStore(hal.storage)
        self.libraries = LibraryStore(hal.storage, self.keys, self.log, MODEL)
        # SR-TH-5: what runs and what was delivered, on flash (firmware/progress_store.py)
        self.progress = ProgressStore(hal.storage, hal.clock, board.USTEP_VOLUME_PL,
                                      self.cycle_ms)
        self.service = ServiceServer(hal.service_port, self, self.log, self.keys,
                                     self.libraries, PhysicalConfirm(hal))
        self.heartbeat = 0
        self.program = None          # (rate_ul_per_h, vtbi_ul, kvo_ul_per_h, occ, bubble)
        self.library = None          # firmware.druglib.Library of the active slot, or None
        self.post_results = []
        self.post_ok = False
        self.paused_since_ms = None
        self.last_phase = sc.PHASE_IDLE
        self.last_faults = 0
        self.last_downstream_mmhg = 0
        self.last_battery_mv = 0
        self.last_steps = 0
        self.last_overruns = 0
        self.cycles = 0
        self.errors_logged = 0
        self.last_error = None
        # the bag's volume at programming, uL (None: unknown -> no reservoir alarms)
        self.reservoir_ul = None
        from firmware.alarm_checks import AlarmChecks   # the application's alarm conditions
        self.checks = AlarmChecks(self)

    # ---- lifecycle ---------------------------------------------------------
    def now_ms(self):
        return self.hal.clock.ticks_ms()

    def boot(self):
        """Power-on: log, self test, safe outputs.  Delivery blocked on failure."""
        self.driver.cut_motor()
        self._log_power_off()
        self.log.append(events.POWER_ON, 0, 0)
        self.post_results = run_post(self.hal)
        failed = failures(self.post_results)
        self.post_ok = not failed
        self.log.append(events.SELF_TEST_PASSED if self.post_ok else events.SELF_TEST_FAILED,
                        len(self.post_results), len(failed))
        if failed:
            self.alarms.raise_alarm(al.SELF_TEST_FAILED, self.now_ms())
        self.set_library(self.libraries.open_active())   # verified, or None (logged)
        self.progress.boot(self)     # SR-TH-5: an interrupted therapy is shown, not resumed
        self.alarms.update(self.now_ms())
        return self.post_ok

    def _log_power_off(self):
        """SR-LOG-1 power off: the pump has no orderly shutdown (the battery is pulled or
        runs out, a reset), so the end of the previous run is logged at the next power-on:
        POWER_OFF a = 1 (noticed at power-on), b = that run's uptime (s) at its last record."""
        log = self.log
        if not log.last_seq:
            return
        from firmware.eventlog import decode
        try:
            last = log.read(log.last_seq, 1)
            if last:
                rec = decode(last[0])
                if rec[1] != events.POWER_OFF:
                    log.append(events.POWER_OFF, 1, rec[3] // 1000)
        except Exception as e:          # never stops a boot
            self._error(ERR_SYSTEM, e)

    # ---- drug library ------------------------------------------------------------
    def set_library(self, library):
        """The active drug library changed (boot, or a committed load): a verified
        ``firmware.druglib.Library`` or None.  Programs already loaded keep running."""
        self.library = library

    # ---- therapy -------------------------------------------------------------
    def program_continuous(self, rate_ul_per_h, vtbi_ul, kvo_ul_per_h=0,
                           occlusion_limit_mmhg=DEFAULT_OCCLUSION_LIMIT_MMHG,
                           bubble_limit_ul=DEFAULT_BUBBLE_LIMIT_UL,
                           hard_min_rate_ul_per_h=0, hard_max_rate_ul_per_h=0):
        """Check and load a continuous infusion; raises sc.ProgramRefused."""
        try:
            irq = self.driver.lock()
            try:
                self.core.load_program(rate_ul_per_h, vtbi_ul, kvo_ul_per_h,
                                       occlusion_limit_mmhg, bubble_limit_ul,
                                       hard_min_rate_ul_per_h, hard_max_rate_ul_per_h)
            finally:
                self.driver.unlock(irq)
        except sc.CoreRefused as e:   # logged with IRQs enabled (flash write)
            self.log.append(events.PROGRAM_REFUSED, getattr(e, "field_id", 0), e.code)
            raise
        self.program = (rate_ul_per_h, vtbi_ul, kvo_ul_per_h, occlusion_limit_mmhg,
                        bubble_limit_ul)
        self.log.append(events.THERAPY_PROGRAMMED, rate_ul_per_h, vtbi_ul)
        # the completed infusion those alarms announced is replaced by this one
        self.alarms.supersede(al.INFUSION_COMPLETE)
        self.alarms.supersede(al.INFUSION_COMPLETE_KVO)
        self.therapy = None                           # program_from_library sets it again
        self.mode = None                              # program_therapy sets it again
        self.progress.clear(self)                     # SR-TH-5: the old record is replaced
        self.alarms.cause_gone(al.SOFT_LIMIT_OVERRIDE)  # the override's program is replaced
        self.last_phase = self.core.phase

    def unlock_clinician(self, now_ms):
        """Clinician access (UP + DOWN together): SELECT opens the programming menu for
        ``CLINICIAN_ACCESS_MS``; without it the patient's SELECT only acknowledges."""
        self.clinician_until_ms = now_ms + CLINICIAN_ACCESS_MS

    # ---- therapy modes (firmware/therapy/) ----------------------------------------------
    def core_load(self, program):
        """Load a program (kwargs of SafetyCore.load_program) with IRQs masked; a refusal
        is logged and raised (sc.ProgramRefused)."""
        try:
            irq = self.driver.lock()
            try:
                self.core.load_program(**program)
            finally:
                self.driver.unlock(irq)
        except sc.CoreRefused as e:
            self.log.append(events.PROGRAM_REFUSED, getattr(e, "field_id", 0), e.code)
            raise

    def core_set_rate(self, rate_ul_per_h, until_ul):
        """The next segment of a mode: rate until the primary volume until_ul (logged)."""
        irq = self.driver.lock()
        try:
            self.core.set_rate(rate_ul_per_h, until_ul)
        finally:
            self.driver.unlock(irq)
        self.log.append(events.RATE_CHANGED, rate_ul_per_h, until_ul)
        if self.program is not None:       # the display and STATUS show the rate running
            self.program = (rate_ul_per_h,) + self.program[1:]

    def program_therapy(self, spec):
        """Program any therapy mode from its spec (firmware/therapy/__init__.py): checked by
        the mode (therapy.TherapyError) and by the core (sc.ProgramRefused); returns the
        mode.  The previous program stays in force on a refusal."""
        from firmware import therapy
        mode = therapy.make(spec)
        self.load_mode(mode)
        return mode

    def load_mode(self, mode, resumed=False):
        """Load a mode object into the core and make it the running therapy (logged).
        A new program (not a power-loss resume) replaces the power-loss record: a cut
        before it starts offers nothing, never the program it replaced (SR-TH-5)."""
        mode.load(self)
        program = mode.core_args
        self.program = (program["rate_ul_per_h"], program["vtbi_ul"], program["kvo_ul_per_h"],
                        program["occlusion_limit_mmhg"], program["bubble_limit_ul"])
        self.log.append(events.THERAPY_PROGRAMMED, program["rate_ul_per_h"], program["vtbi_ul"])
        from firmware.therapy import MODES
        self.log.append(events.THERAPY_MODE, MODES.index(mode.NAME), len(mode.segments))
        self.alarms.supersede(al.INFUSION_COMPLETE)
        self.alarms.supersede(al.INFUSION_COMPLETE_KVO)
        self.therapy = None
        self.alarms.cause_gone(al.SOFT_LIMIT_OVERRIDE)
        self.mode = mode
        self.reservoir_ul = mode.spec.get("reservoir_ul")
        self.last_phase = self.core.phase
        if not resumed:
            self.progress.clear(self)

    def resume_therapy(self, spec, snapshot, delivered_ul):
        """After a power loss, on the clinician's or patient's confirmation (SR-TH-5): the
        same therapy without what was already delivered (firmware/resume_screen.py)."""
        from firmware import therapy
        if spec.get("mode") == "prime":     # the set may be connected now: never resumed
            raise therapy.TherapyError("mode", "a prime is not resumed: prime again")
        mode = therapy.make(spec)
        # what was given after the last save is not in the record: count it as given, so
        # a power cut can under-deliver (<= the save lag), never give a volume twice
        fastest = spec.get("bolus_rate_ul_per_h", 0) or 0
        for seg in mode.segments:
            fastest = max(fastest, seg[1] + (spec.get("bolus_rate_ul_per_h", 0) or 0))
        mode.resume_from(delivered_ul + self.progress.lag_ul(fastest))
        mode.base_ul = delivered_ul
        snapshot = snapshot or {}
        mode.granted = snapshot.get("granted", 0)
        mode.denied = snapshot.get("denied", 0)
        self.load_mode(mode, resumed=True)
        # the rolling windows and the lockout across the power loss (SR-CORE-2): what
        # the record says, counted as if given now, and a full lockout from now
        irq = self.driver.lock()
        try:
            self.core.restore_history(snapshot.get("w1h_ul", 0), snapshot.get("w4h_ul", 0),
                                      snapshot.get("b1h", 0))
        finally:
            self.driver.unlock(irq)
        return mode

    def request_bolus(self, kind=sc.BOLUS_PATIENT, amount_ul=0):
        """A bolus press (patient: the BOLUS key) or a clinician bolus: the core grants or
        denies it (SR-CORE-2); every request and answer is logged.  Returns the code."""
        self.log.append(events.BOLUS_REQUESTED, kind, amount_ul)
        irq = self.driver.lock()
        try:
            code = self.core.bolus(kind, amount_ul)
        finally:
            self.driver.unlock(irq)
        if code == sc.BOLUS_GRANTED:
            self.log.append(events.BOLUS_GRANTED, kind, self.core.window_ul())
            self.progress.sync(self)      # the record knows of it before the next cut
        else:
            self.log.append(events.BOLUS_DENIED, code, kind)
        if self.mode is not None:
            self.mode.count_bolus(code)
        return code

    def early_taper_down(self):
        """TPN: start the taper down now (the nurse's request); logged."""
        mode = self.mode
        if mode is None or not hasattr(mode, "early_taper_down"):
            from firmware.therapy import TherapyError
            raise TherapyError("mode", "no taper to bring forward")
        taper, not_given = mode.early_taper_down(self)
        self.log.append(events.TAPER_DOWN_EARLY, not_given, taper.total_ul)
        return not_given

    def program_from_library(self, *args, **kw):
        """Program a continuous infusion from the active drug library (SR-TH-3/4, SR-LIB-4):
        (care_area, drug_id, conc, dose, dose_unit, vtbi_ul, weight_g=None, kvo_ul_per_h=0,
        confirm_soft=False, library_id=None, library_version=None, dry_run=False), checked
        and converted by ``firmware.programming.program`` (see there and
        docs/CONTRACTS.md); returns its Plan or raises programming.ProgramError."""
        from firmware import programming    # on first use: no heap for a running pump
        return programming.program(self, *args, **kw)

    def start(self):
        """Start or resume; raises sc.CoreRefused when delivery is blocked."""
        if not self.post_ok:
            raise sc.CoreRefused(sc.ERR_FAULTED, "self test failed: delivery blocked")
        blocking = self.alarms.blocking_alarm()
        if blocking:
            raise sc.CoreRefused(sc.ERR_FAULTED, "alarm active: %s" % al.name(blocking))
        mode = self.mode
        if mode is not None and mode.delay_pending(self.now_ms()):
            self.log.append(events.THERAPY_DELAYED, mode.start_delay_s, 0)
            return                  # mode.on_cycle starts it when the time comes
        resumed = self.core.phase == sc.PHASE_PAUSED
        irq = self.driver.lock()
        try:
            self.core.start()
            self.driver.allow_motor()     # the enable line now follows delivery
        finally:
            self.driver.unlock(irq)
        self.paused_since_ms = None
        self.alarms.cause_gone(al.PAUSED_TOO_LONG)
        self.log.append(events.THERAPY_RESUMED if resumed else events.THERAPY_STARTED,
                        self.core.delivered_ul(), 0)
        self.last_phase = self.core.phase
        self.progress.sync(self)         # SR-TH-5: saved on start

    def pause(self):
        """Pause delivery (nurse/patient stop)."""
        if self.core.phase in (sc.PHASE_RUNNING, sc.PHASE_KVO, sc.PHASE_READY):
            irq = self.driver.lock()
            try:
                self.core.pause()
                self.driver.follow_delivery()  # paused: driver released now
            finally:
                self.driver.unlock(irq)
            self.log.append(events.THERAPY_PAUSED, self.core.delivered_ul(), 0)
            self._on_stopped()
            self.progress.sync(self)     # SR-TH-5: saved on pause
        self.last_phase = self.core.phase

    def acknowledge(self):
        """Acknowledge alarms; core faults clear only if their cause is gone."""
        hal = self.hal
        mmhg = hal.pressure_down.read_mmhg()
        present = hal.air.air_present()
        irq = self.driver.lock()
        remaining = self.core.acknowledge(mmhg, present, self.heartbeat, hal.encoder.count())
        self.driver.unlock(irq)
        self.checks.motion_acknowledged()
        for bit, alarm_id in _FAULT_ALARMS:
            if not remaining & bit:
                self.alarms.cause_gone(alarm_id)
        self.last_faults = remaining
        self.alarms.acknowledge()
        return remaining

    def silence(self):
        self.alarms.silence(self.now_ms())

    def cut_motor(self):
        """Channel B's own stop: pause the core and de-energise the driver, whatever the core
        says; the line stays off until a new start() (SPEC section 3)."""
        irq = self.driver.lock()
        try:
            try:                      # the core first: it stops commanding steps even if
                if self.core.phase in (sc.PHASE_RUNNING, sc.PHASE_KVO, sc.PHASE_READY):
                    self.core.pause()
            finally:                  # ... the enable line itself fails
                self.driver.cut_motor()
        finally:
            self.driver.unlock(irq)
        if self.paused_since_ms is None:
            self._on_stopped()
        self.last_phase = self.core.phase

    def system_error(self, exc, alarm_id=al.SYSTEM_ERROR):
        """A firmware or drive failure: motor cut, HIGH alarm until restart, logged once."""
        self.post_ok = False            # nothing starts again before a restart
        try:
            self.cut_motor()
        finally:
            try:                        # the alarm before the log: a failing flash
                self.alarms.raise_alarm(alarm_id, self.now_ms())  # must not hide it
            finally:
                self._error(ERR_SYSTEM, exc)

    def _on_stopped(self):
        # The core has already cut this cycle's steps at the stopping tick; steps
        # commanded before it were counted as delivered, so they are not cancelled.
        self.paused_since_ms = self.now_ms()

    # ---- the control cycle -----------------------------------------------------
    def cycle(self):
        """One control cycle: sensors -> safety core -> motor, then housekeeping."""
        hal = self.hal
        core = self.core
        now = hal.clock.ticks_ms()
        self.cycles += 1
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        mmhg = hal.pressure_down.read_mmhg()
        air_nl = hal.air.take_air_nl()
        air_present = hal.air.air_present()
        self.last_downstream_mmhg = mmhg

        self.last_steps = self.driver.cycle(mmhg, air_nl, air_present, self.heartbeat,
                                            hal.encoder.count())

        faults = core.faults
        if faults != self.last_faults:
            self._on_faults(faults, now)
        phase = core.phase
        if phase != self.last_phase:
            self._on_phase(phase, now)
        if self.mode is not None:
            self.mode.on_cycle(self, now)    # next segment, delayed start
        self.progress.tick(self, now)    # SR-TH-5: saved every 1 mL or 60 s (int compares)

        self.checks.run(now)     # door, battery, reservoir, motion, sensors, paused too long
        keys = hal.buttons.poll()
        if keys:
            self._on_keys(keys)
        elif self.menu is not None and self.menu.active:
            self.menu.tick(self, now)     # SR-TH-6: unconfirmed edit reverts, menu times out
        self.alarms.update(now)
        try:
            self.service.poll()
        except Exception as e:      # the service link never interrupts therapy (SR-SVC-1)
            self._error(ERR_SERVICE, e)
        hal.watchdog.feed()
        if self.cycles % 10 == 0 or keys:
            try:
                hal.display.show(ui.render(self))
            except Exception as e:  # a display fault is logged; delivery goes on
                self._error(ERR_DISPLAY, e)

    def _error(self, code, exc):
        """Log a housekeeping failure once per kind (the log must not flood)."""
        self.last_error = exc
        if not self.errors_logged & code:
            self.errors_logged |= code
            self.log.append(events.ERROR, code, 0)

    def _on_faults(self, faults, now):
        new = faults & ~self.last_faults
        for bit, alarm_id in _FAULT_ALARMS:
            if new & bit:
                self.alarms.raise_alarm(alarm_id, now)
        if new:
            self.log.append(events.THERAPY_STOPPED, self.core.delivered_ul(), new)
            self._on_stopped()
        self.last_faults = faults

    def _on_phase(self, phase, now):
        if phase == sc.PHASE_KVO:
            self.log.append(events.THERAPY_COMPLETED, self.core.delivered_ul(), 1)
            self.alarms.raise_alarm(al.INFUSION_COMPLETE_KVO, now)
            self.alarms.cause_gone(al.INFUSION_COMPLETE_KVO)  # an event: ack clears it
            self.alarms.cause_gone(al.SOFT_LIMIT_OVERRIDE)    # the dose is no longer given
        elif phase == sc.PHASE_COMPLETE:
            self.log.append(events.THERAPY_COMPLETED, self.core.delivered_ul(), 0)
            self.alarms.raise_alarm(al.INFUSION_COMPLETE, now)
            self.alarms.cause_gone(al.INFUSION_COMPLETE)  # clears on acknowledge
            self.alarms.cause_gone(al.SOFT_LIMIT_OVERRIDE)
        self.last_phase = phase
        self.progress.sync(self)         # SR-TH-5: fault stop or completion saved

    def _on_keys(self, keys):
        menu = self.menu
        in_menu = menu is not None and menu.active
        if keys & KEY_SILENCE and (not in_menu or self.alarms.sounding() and
                                   self.alarms.top_priority() > al.PRIORITY_LOW):
            self.silence()
            keys &= ~KEY_SILENCE          # in the menu SILENCE is "back", unless an alarm
            #                               above LOW sounds
        if keys & KEY_SELECT and (self.alarms.unacknowledged() or self.core.faults):
            self.acknowledge()            # alarms first; then SELECT drives the menu
            keys &= ~KEY_SELECT
        now = self.now_ms()
        if keys & KEY_CLINICIAN == KEY_CLINICIAN:   # the chord taught to nurses, not patients
            self.unlock_clinician(now)
            keys &= ~KEY_CLINICIAN
        phase = self.core.phase
        if phase != sc.PHASE_RUNNING and phase != sc.PHASE_KVO and (
                in_menu or keys & KEY_SELECT and now < self.clinician_until_ms):
            if menu is None:              # programming on the buttons (firmware/menu.py)
                from firmware.menu import Menu
                menu = self.menu = Menu()
            keys = menu.on_keys(self, keys, self.now_ms())   # the keys it leaves
        if keys & KEY_BOLUS and self.mode is not None and self.mode.bolus_allowed:
            self.request_bolus()          # the core decides (lockout, counts, maxima)
        if keys & KEY_RUN_STOP and self.mode is not None and \
                self.mode.start_at_ms is not None:
            self.mode.start_at_ms = None      # RUN/STOP cancels a delayed start (logged)
            self.log.append(events.THERAPY_DELAYED, 0, 1)
            keys &= ~KEY_RUN_STOP
        if keys & KEY_RUN_STOP:
            if self.core.phase in (sc.PHASE_RUNNING, sc.PHASE_KVO):
                self.pause()
            elif self.program is not None:
                try:
                    self.start()
                except sc.CoreRefused:
                    pass  # the display keeps showing why

    # ---- reporting -------------------------------------------------------------
    def status(self):
        """Snapshot for the UI and the service protocol (STATUS)."""
        top = self.alarms.top()
        prog = self.program
        return {
            "phase": self.core.phase,
            "rate_ul_per_h": prog[0] if prog else 0,
            "vtbi_ul": prog[1] if prog else 0,
            "kvo_ul_per_h": prog[2] if prog else 0,
            "delivered_nl": self.core.delivered_nl(),
            "kvo_nl": self.core.kvo_nl(),
            "alarm": top,
            "alarm_priority": al.priority(top) if top else 0,
            "faults": self.core.faults,
            "downstream_mmhg": self.last_downstream_mmhg,
            "battery_mv": self.last_battery_mv,
            "battery_min_left": self.checks.battery_min_left,
            "uptime_ms": self.now_ms(),
            "log_seq": self.log.last_seq,
            # the active drug library (0, 0 = none) and the program's drug (0 = basic
            # infusion or not from the library)
            "library_id": self.library.library_id if self.library is not None else 0,
            "library_version": self.library.version if self.library is not None else 0,
            "drug_id": self.therapy.drug_id if self.therapy is not None else 0,
            "mode": self.mode.NAME if self.mode is not None else "basic",
            "mode_phase": self.mode.phase_name() if self.mode is not None else "",
        }
