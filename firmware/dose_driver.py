"""Who ticks the safety core: in the firmware cycle (sim) or in a 10 ms timer IRQ (device).

Owns the coupling between the application cycle and the core's control tick.

* ``BatchDoseDriver`` (simulator, host): each firmware cycle hands the core the
  cycle's sample (pressure, encoder) and runs ``cycle_ms / TICK_MS`` ticks with
  the cycle's inputs (``core.run``) and hands the steps to the stepper, spread
  over the cycle.  Fast and deterministic (PT-2).
* ``TimerDoseDriver`` (device): a hard timer IRQ runs one core tick every 10 ms
  (``core.tick``: air and heartbeat, no sample) and queues its steps itself; the
  application publishes each new sample to the core (``core.sample``, IRQs masked)
  and its heartbeat.  If the application stalls, the ticks go on with a stale
  heartbeat and the core stops the motor after 1 s (SR-CORE-7).  Every other core
  call from the application runs with IRQs masked (``locked``), so the IRQ never
  sees a half-updated state.

Back-off (SR-CORE-4): after an occlusion stop the core decides how far the motor
runs back to relieve the line (``core.take_backoff``); the driver runs it at
``BACKOFF_USTEPS_PER_S`` (the sim: in the cycle; the device: in the tick IRQ, a
chunk per tick) with the enable line held on for it, unless channel B has cut the
motor.  ``backoff_issued`` counts those reverse microsteps (channel B's motion
check adds them to the steps the encoder should see).

Flow linearisation (PT-3): given the board (``DELIVERY_USTEPS_PER_REV``) and the
encoder's pulses per turn, both pass the core's steps through a cam schedule
(``firmware/cam_schedule.py``) before the stepper: slow through the delivery
zone, fast through the refill, never ahead of the core's count.  The encoder
count each cycle hands over gives the schedule the cam's phase (``observe``, in
the application context, IRQs masked); reverse moves of the back-off move it
back (``reverse``).  The motor moves only while the core delivers (RUNNING, KVO)
and has no fault, and at COMPLETE while the schedule still owes counted volume
(the drain: the enable line stays on for it, a few ticks at most); a load (the
core READY or IDLE, or its count restarting) drops the old program's undelivered
volume.  Without a board the steps go straight to the stepper, as before.

Both also own the motor driver's enable line: it follows delivery.  After
every tick the line is energised only while the core is delivering (RUNNING or
KVO) and the application has not cut it; idle, ready, paused, faulted and
complete all release it, in the IRQ itself on the device, so a heartbeat stop
de-energises the motor even when the application is stalled.  ``cut_motor()``
is channel B's independent stop (SPEC section 3): the line stays off until the
application calls ``allow_motor()`` for a new start.

Both expose the same methods to ``PumpApp``; the tick path allocates nothing.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import safety_core as sc
from firmware.cam_schedule import for_board as _cam_for_board

TICK_MS = const(10)
BACKOFF_USTEPS_PER_S = const(8000)    # back-off speed: the 500 mL/h motor speed, about
_BACKOFF_PER_TICK = const(80)         # BACKOFF_USTEPS_PER_S * TICK_MS // 1000
_RUNNING = const(2)     # sc.PHASE_RUNNING, checked below
_KVO = const(3)         # sc.PHASE_KVO
_IDLE = const(0)        # sc.PHASE_IDLE
_READY = const(1)       # sc.PHASE_READY
_COMPLETE = const(4)    # sc.PHASE_COMPLETE
assert _RUNNING == sc.PHASE_RUNNING and _KVO == sc.PHASE_KVO
assert _IDLE == sc.PHASE_IDLE and _READY == sc.PHASE_READY and _COMPLETE == sc.PHASE_COMPLETE
# the encoder count the application publishes can trail the motor by the steps of the
# ticks between its reading and the publication plus the PIO's train in flight: two
# ticks at the most (refill 80 + core 89 usteps a tick); the schedule's lock allows it
_LOCK_SLACK_USTEPS = const(340)


def _no_lock():
    return None


def _no_unlock(state):
    pass


class _MotorLine:
    """The enable line of the motor driver, following the core's delivery."""

    def __init__(self, core, stepper, cam=None):
        self.core = core
        self.stepper = stepper
        self.cam = cam               # firmware.cam_schedule.CamSchedule, or None
        self.cam_counted = 0         # the core's count at the last cycle (a load resets it)
        self.motor_allowed = False   # channel B's permission (cut_motor / allow_motor)
        self.motor_on = False
        self.backoff_left = 0        # reverse microsteps of a back-off still to run
        self.backoff_issued = 0      # reverse microsteps run since boot
        self.backoff_tail = 0        # 1: a back-off chunk still plays out (line held on)
        stepper.enable(False)

    def follow_delivery(self):
        """Energise the driver only while the core delivers (or a back-off runs) and
        channel B allows it."""
        phase = self.core.phase
        want = self.motor_allowed and (phase == _RUNNING or phase == _KVO or
                                       self.backoff_left > 0 or self.backoff_tail or
                                       (phase == _COMPLETE and self._draining()))
        if want != self.motor_on:
            self.stepper.enable(want)
            self.motor_on = want

    def allow_motor(self):
        """A start: the line may follow delivery again (energised once the core runs); the
        rest of a back-off is cancelled (the core re-arms its motion check at a start)."""
        self.motor_allowed = True
        self.backoff_left = 0
        self.follow_delivery()

    def cut_motor(self):
        """Channel B stop: de-energise now, whatever the core does, until allow_motor()."""
        self.motor_allowed = False
        self.motor_on = False
        self.backoff_left = 0        # a cut motor runs no back-off either
        self.stepper.enable(False)

    def _draining(self):
        """COMPLETE and the cam schedule still owes counted volume (PT-3)."""
        cam = self.cam
        return cam is not None and not self.core.faults and cam.pending()

    def _cam_sample(self, encoder_count):
        """Application context: a load resets the schedule; the encoder gives its phase."""
        cam = self.cam
        core = self.core
        counted = core.delivered_steps + core.kvo_steps
        phase = core.phase
        if phase == _READY or phase == _IDLE or counted < self.cam_counted:
            cam.reset()               # a new program: its count starts at 0
        self.cam_counted = counted
        cam.observe(encoder_count)

    def _motor_steps(self, steps):
        """The core's ``steps`` of this period through the cam schedule: the motor's steps.
        Nothing moves unless the core delivers without a fault (or drains at COMPLETE)."""
        cam = self.cam
        if cam is None:
            return steps
        if not self.motor_allowed:    # channel B cut: dropped, as the disabled driver would
            cam.next(steps, False)
            cam.reset()
            return 0
        core = self.core
        phase = core.phase
        run = self.motor_on and not core.faults and (phase == _RUNNING or phase == _KVO or
                                                     phase == _COMPLETE)
        return cam.next(steps, run)

    def _backoff_chunk(self, most):
        """Up to ``most`` reverse microsteps of the back-off, counted as issued."""
        n = self.backoff_left
        if n > most:
            n = most
        self.backoff_left -= n
        if self.motor_on:
            self.backoff_issued += n
            self.core.backoff_done(n)     # the core's motion check expects their pulses
            return n
        return 0


class BatchDoseDriver(_MotorLine):
    """Core ticks run inside the application cycle."""

    def __init__(self, core, stepper, cycle_ms, board=None, pulses_per_rev=0):
        _MotorLine.__init__(self, core, stepper,
                            _cam_for_board(board, pulses_per_rev, cycle_ms))
        self.cycle_ms = cycle_ms
        self.ticks_per_cycle = cycle_ms // TICK_MS

    def cycle(self, mmhg, air_nl, air_present, heartbeat, encoder_count=0):
        """This cycle's sample and ticks; returns the microsteps commanded forward."""
        core = self.core
        if self.cam is not None:
            self._cam_sample(encoder_count)
        steps = core.run(mmhg, air_nl, air_present, heartbeat, self.ticks_per_cycle,
                         encoder_count)
        self.stepper.move(self._motor_steps(steps), self.cycle_ms)
        if core.faults:
            back = core.take_backoff()        # 0 but after an occlusion stop
            if back and self.motor_allowed:
                self.backoff_left += back
        if self.backoff_left:
            self.motor_on = self.motor_allowed
            self.stepper.enable(self.motor_on)
            back = self._backoff_chunk(BACKOFF_USTEPS_PER_S * self.cycle_ms // 1000)
            if back:
                self.stepper.move(-back, self.cycle_ms)
                if self.cam is not None:
                    self.cam.reverse(back)
        self.follow_delivery()
        return steps

    def lock(self):
        return None

    def unlock(self, state):
        pass


class TimerDoseDriver(_MotorLine):
    """Core ticks run in a periodic hard IRQ, independent of the application.

    ``timer_start(period_ms, callback)`` starts the periodic timer and returns
    it (the board passes a ``machine.Timer``); ``irq_lock``/``irq_unlock`` mask
    interrupts (``machine.disable_irq``/``enable_irq``).  The driver keeps the
    timer object: on the rp2 port a Timer nobody references is swept by the next
    garbage collection and stops firing (``tests/fakes/machine.py``)."""

    def __init__(self, core, stepper, timer_start, irq_lock=_no_lock, irq_unlock=_no_unlock,
                 board=None, pulses_per_rev=0):
        _MotorLine.__init__(self, core, stepper,
                            _cam_for_board(board, pulses_per_rev, TICK_MS, _LOCK_SLACK_USTEPS))
        self.irq_lock = irq_lock
        self.irq_unlock = irq_unlock
        self.mmhg = 0
        self.air_nl = 0
        self.air_present = False
        self.heartbeat = 0
        self.steps_since_cycle = 0
        self._tick_cb = self._tick          # bound once: no allocation in the IRQ
        self.timer = timer_start(TICK_MS, self._tick_cb)
        if self.timer is None:
            raise ValueError("timer_start must return the timer: the driver keeps it alive")

    def _tick(self, _timer):
        air = self.air_nl
        self.air_nl = 0
        steps = self.core.tick(air, self.air_present, self.heartbeat)
        n = steps
        if self.cam is not None:
            n = self._motor_steps(steps)
        self.steps_since_cycle += steps
        if n:
            self.stepper.move(n, TICK_MS)
            self.backoff_tail = 0
        elif self.backoff_left:
            back = self._backoff_chunk(_BACKOFF_PER_TICK)
            if back:
                self.stepper.move(-back, TICK_MS)
                if self.cam is not None:
                    self.cam.reverse(back)
            self.backoff_tail = 1         # the chunk plays out over the next 10 ms
        else:
            self.backoff_tail = 0
        self.follow_delivery()

    def stop(self):
        """Stop the tick timer (boot failed after the driver was built)."""
        self.cut_motor()
        self.timer.deinit()

    def cycle(self, mmhg, air_nl, air_present, heartbeat, encoder_count=0):
        """Publish the cycle's samples (the pressure and the encoder to the core now);
        returns the steps the IRQ made since the last cycle."""
        state = self.irq_lock()
        core = self.core
        core.sample(mmhg, encoder_count)
        if self.cam is not None:
            self._cam_sample(encoder_count)
        if core.faults:
            back = core.take_backoff()        # 0 but after an occlusion stop
            if back and self.motor_allowed:
                self.backoff_left += back
                self.motor_on = True           # the IRQ runs it with the line held on
                self.stepper.enable(True)
        self.mmhg = mmhg
        self.air_nl += air_nl
        self.air_present = air_present
        self.heartbeat = heartbeat
        steps = self.steps_since_cycle
        self.steps_since_cycle = 0
        self.irq_unlock(state)
        return steps

    def lock(self):
        return self.irq_lock()

    def unlock(self, state):
        self.irq_unlock(state)
