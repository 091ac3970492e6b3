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

Both expose the same methods to ``PumpApp``; the tick path allocates nothing.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

TICK_MS = const(10)


def _no_lock():
    return None


def _no_unlock(state):
    pass


class BatchDoseDriver:
    """Core ticks run inside the application cycle."""

    def __init__(self, core, stepper, cycle_ms):
        self.core = core
        self.stepper = stepper
        self.cycle_ms = cycle_ms
        self.ticks_per_cycle = cycle_ms // TICK_MS

    def cycle(self, mmhg, air_nl, air_present, heartbeat):
        """Run this cycle's ticks; returns the microsteps commanded."""
        steps = self.core.run(mmhg, air_nl, air_present, heartbeat, self.ticks_per_cycle)
        self.stepper.move(steps, self.cycle_ms)
        return steps

    def lock(self):
        return None

    def unlock(self, state):
        pass


class TimerDoseDriver:
    """Core ticks run in a periodic hard IRQ, independent of the application.

    ``timer_start(period_ms, callback)`` starts the periodic timer (the board
    passes ``machine.Timer``); ``irq_lock``/``irq_unlock`` mask interrupts
    (``machine.disable_irq``/``enable_irq``)."""

    def __init__(self, core, stepper, timer_start, irq_lock=_no_lock, irq_unlock=_no_unlock):
        self.core = core
        self.stepper = stepper
        self.irq_lock = irq_lock
        self.irq_unlock = irq_unlock
        self.mmhg = 0
        self.air_nl = 0
        self.air_present = False
        self.heartbeat = 0
        self.steps_since_cycle = 0
        self._tick_cb = self._tick          # bound once: no allocation in the IRQ
        timer_start(TICK_MS, self._tick_cb)

    def _tick(self, _timer):
        air = self.air_nl
        self.air_nl = 0
        steps = self.core.run(self.mmhg, air, self.air_present, self.heartbeat, 1)
        if steps:
            self.stepper.move(steps, TICK_MS)
            self.steps_since_cycle += steps

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
