"""Who ticks the safety core: in the firmware cycle (sim) or in a 10 ms timer IRQ (device).

Owns the coupling between the application cycle and the core's control tick.

* ``BatchDoseDriver`` (simulator, host): each firmware cycle runs the core for
  ``cycle_ms / TICK_MS`` ticks with the cycle's inputs and hands the steps to the
  stepper, spread over the cycle.  Fast and deterministic (PT-2).
* ``TimerDoseDriver`` (device): a hard timer IRQ runs one core tick every 10 ms
  and queues its steps itself; the application only publishes the latest sensor
  samples and its heartbeat.  If the application stalls, the ticks go on with a
  stale heartbeat and the core stops the motor after 1 s (SR-CORE-7).  Every
  other core call from the application runs with IRQs masked (``locked``), so
  the IRQ never sees a half-updated state.

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

TICK_MS = const(10)
_RUNNING = const(2)     # sc.PHASE_RUNNING, checked below
_KVO = const(3)         # sc.PHASE_KVO
assert _RUNNING == sc.PHASE_RUNNING and _KVO == sc.PHASE_KVO


def _no_lock():
    return None


def _no_unlock(state):
    pass


class _MotorLine:
    """The enable line of the motor driver, following the core's delivery."""

    def __init__(self, core, stepper):
        self.core = core
        self.stepper = stepper
        self.motor_allowed = False   # channel B's permission (cut_motor / allow_motor)
        self.motor_on = False
        stepper.enable(False)

    def follow_delivery(self):
        """Energise the driver only while the core delivers and channel B allows it."""
        phase = self.core.phase
        want = self.motor_allowed and (phase == _RUNNING or phase == _KVO)
        if want != self.motor_on:
            self.stepper.enable(want)
            self.motor_on = want

    def allow_motor(self):
        """A start: the line may follow delivery again (energised once the core runs)."""
        self.motor_allowed = True
        self.follow_delivery()

    def cut_motor(self):
        """Channel B stop: de-energise now, whatever the core does, until allow_motor()."""
        self.motor_allowed = False
        self.motor_on = False
        self.stepper.enable(False)


class BatchDoseDriver(_MotorLine):
    """Core ticks run inside the application cycle."""

    def __init__(self, core, stepper, cycle_ms):
        _MotorLine.__init__(self, core, stepper)
        self.cycle_ms = cycle_ms
        self.ticks_per_cycle = cycle_ms // TICK_MS

    def cycle(self, mmhg, air_nl, air_present, heartbeat):
        """Run this cycle's ticks; returns the microsteps commanded."""
        steps = self.core.run(mmhg, air_nl, air_present, heartbeat, self.ticks_per_cycle)
        self.stepper.move(steps, self.cycle_ms)
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

    def __init__(self, core, stepper, timer_start, irq_lock=_no_lock, irq_unlock=_no_unlock):
        _MotorLine.__init__(self, core, stepper)
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
        steps = self.core.run(self.mmhg, air, self.air_present, self.heartbeat, 1)
        if steps:
            self.stepper.move(steps, TICK_MS)
            self.steps_since_cycle += steps
        self.follow_delivery()

    def stop(self):
        """Stop the tick timer (boot failed after the driver was built)."""
        self.cut_motor()
        self.timer.deinit()

    def cycle(self, mmhg, air_nl, air_present, heartbeat):
        """Publish the cycle's samples; returns the steps the IRQ made since last cycle."""
        state = self.irq_lock()
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
