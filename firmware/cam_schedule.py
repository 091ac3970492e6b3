"""Flow linearisation (PT-3): re-time the safety core's volume microsteps to the cam.

Owns the mapping from the microsteps channel A commands ("volume microsteps": an
exactly uniform rate, ``USTEP_VOLUME_PL`` each, 1/``usteps_per_rev`` of a stroke)
to the microsteps the motor turns.  The cassette's cam delivers only over its
first ``delivery_usteps`` microsteps of each turn (the mark of the cam encoder is
the start of that zone) and refills the segment over the rest.  Sent straight to
the motor, a uniform step rate gives 4/3 of the rate for three quarters of each
turn and nothing for the last quarter (at 1 mL/h: no flow for 45 s every 3 min).

The schedule (MicroPython-portable, integer only, allocation-free per call: it
runs in the 10 ms hard timer IRQ on the device):

* **Delivery zone**: the motor turns ``delivery_usteps`` microsteps for every
  ``usteps_per_rev`` volume microsteps (3 per 4), so the volume per unit time
  equals the programmed rate.  An integer allowance (``acc``, in 1/R of a
  delivery microstep, R = usteps_per_rev) carries the fractions: nothing drifts.
* **Refill zone**: the motor runs through it at ``refill_usteps_per_s`` as soon
  as the cam reaches it, without waiting for the core.  It is paid from the
  steps the slow delivery zone held back; over a whole turn the motor turns
  exactly as many microsteps as the core commanded (R per R).
* At most ``cap = refill steps per period + the core's steps this period``
  microsteps per call (device: 80 + at most 89 per 10 ms tick, well inside the
  PIO's 1799), so a catch-up never outruns the step generator, and a backlog
  drains at the refill speed or more at every rate.

Ledger and invariants (``tests/test_cam_schedule.py``, SR-CORE-2, PT-3):

* ``owed`` = volume microsteps the core commanded minus motor microsteps issued
  minus ``dropped`` (the ones a re-alignment or a new program took off the ledger).
  No call issues more than ``owed``: **the motor never runs ahead of the core's
  count** (SR-CORE-2: the re-timing only delays steps).  Every operation that
  re-aligns the schedule (lock, re-sync, back-off, new program) only lowers it.
* ``acc == owed * D - X(phase)`` at all times (D = delivery_usteps), where
  X(p) = p (R - D) in the delivery zone and D (R - p) in the refill zone: the
  geometry lag.  ``acc`` is the volume the core counted and the cam has not yet
  delivered, in 1/R of a delivery microstep; it is < R after a call that was not
  capped, i.e. the cam's volume equals the count within one microstep.
* **Lag bound**: ``owed <= (R - D) + c_max`` always, where c_max is the most
  volume microsteps the core commands in one period: one refill zone plus one
  period's steps.  After a running call that was not capped, ``owed <= R - D``
  (proof: the delivery stops when acc < R, so owed*D < R + (D-1)(R-D), i.e.
  owed <= R - D; the refill stops only at owed == 0; a capped call issued
  cap > c so owed did not grow; a stop adds the stopping period's steps once,
  and they drain at the refill speed after the restart: until they have, the
  bound is one refill zone plus two periods' steps).

Cam phase: learned from the cam encoder (``observe``, called with every new
count, between calls of ``next``).  Before the phase is known (since start,
``forget``, or on a board whose encoder has several marks per turn: they cannot
tell the delivery start from the others) the steps pass through unchanged.  The
phase locks when the count grows by one over an interval with forward motion
only: the mark passed during the last ``fwd`` motor microsteps, so the phase is
in 0 .. fwd - 1 (+ ``lock_slack``: the steps the encoder reading can trail the
motor, one tick's worth on the device), and is taken as the middle of that
window: **the error is at most the steps of one observation period** (one sim
cycle; on the device one application cycle of ticks plus one tick).  At the
lock ``owed`` is kept and ``acc`` derived from it: the motor then waits until
the core has paid the geometry lag of the present phase (near zero: the lock
happens just after the mark, at the start of the delivery zone).  Each later
pulse checks the tracked phase against the pulse's window; outside it (the cam
lost steps), the phase is set to the nearest one the window allows, keeping the
ledger: the volume the lost steps did not deliver is then delivered, never
beyond the count.

Back-off (SR-CORE-4): the drivers report reverse moves (``reverse``).  The phase
is **tracked** through them (moved back, modulo a turn) and the encoder window
that saw reverse motion is not used for a lock (the sensor cannot tell the
direction).  ``acc`` is kept, so the volume the back-off drew back is not pushed
again as a burst at the restart: the cam re-turns it at the normal pace, paid
by new core steps, exactly as without linearisation.  ``owed`` is lowered to the
geometry lag of the new phase if it exceeds it (never raised).  Tracking keeps
the linearisation from the first step after the restart; if the cam slipped in
reverse against the pressurised line, the next forward pulse's check re-sets
the phase.

Stops: ``next(steps, run=False)`` (core PAUSED, or any fault latched) issues
nothing: **the motor never moves after a stop**.  The backlog is **kept**: at
the restart it drains with the normal schedule, so what the core counted is
what the cam delivers (dropping it would under-deliver up to a refill zone per
stop while the core reports it delivered).  It is at most the stopping
period's steps of volume (``acc``) plus the geometry lag.  COMPLETE (VTBI done,
no KVO): the drivers keep calling with ``run=True`` while ``pending()``, which
delivers the counted volume still in ``acc`` (it finishes a refill run in
progress first) and no more: the step backlog itself is geometry lag, whose
volume the cam has already delivered; turning it out would push up to a
quarter stroke (12.5 uL) beyond the VTBI.  A new program (``reset``, at each
load: the core's count restarts) drops the previous program's undelivered
volume (acc down to < 1 microstep: it belongs to the old program, not the new
one) and keeps the phase (the cam did not move).
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

REFILL_USTEPS_PER_S = const(8000)   # the refill run: the back-off / 500 mL/h motor speed


class CamSchedule:
    """Re-times the core's volume microsteps to the cam geometry (module docstring)."""

    def __init__(self, usteps_per_rev, delivery_usteps, usteps_per_pulse,
                 refill_usteps_per_s=REFILL_USTEPS_PER_S, period_ms=10, lock_slack=0):
        if not 0 < delivery_usteps <= usteps_per_rev:
            raise ValueError("delivery_usteps must be 1 .. usteps_per_rev")
        self.rev = usteps_per_rev
        self.delivery = delivery_usteps
        self.refill = usteps_per_rev - delivery_usteps
        # one mark per turn: the mark is the delivery start.  Several marks cannot be
        # told apart, no mark gives nothing: pass-through for good.
        self.active = (usteps_per_pulse == usteps_per_rev and delivery_usteps < usteps_per_rev)
        per_period = refill_usteps_per_s * period_ms // 1000
        self.refill_per_period = per_period if per_period > 0 else 1
        self.lock_slack = lock_slack
        self.enc_seen = False
        self.enc_last = 0
        self.dropped = 0         # volume microsteps dropped from the ledger, never issued
        self.owed = 0            # volume microsteps commanded, not issued, not dropped
        self.forget()

    # ---- state -------------------------------------------------------------------
    def forget(self):
        """Phase unknown (power-on, or the cam may have moved unseen): pass-through
        until the next pulse; the backlog is dropped (the motor only falls behind)."""
        self.locked = False
        self.phase = 0
        self.dropped += self.owed
        self.owed = 0
        self.acc = 0
        self.fwd = 0             # forward motor steps since the last encoder reading
        self.rev_seen = False    # reverse motion since the last encoder reading
        self.capped = False      # the last call stopped at its cap

    def _lag(self, p):
        """X(p) = owed * D - acc at phase p: the steps the cam's geometry holds back."""
        d = self.delivery
        if p <= d:
            return p * self.refill
        return d * (self.rev - p)

    def _lock(self, p):
        """Phase ``p`` from the encoder: keep the ledger, derive the allowance from it."""
        self.locked = True
        self.phase = p
        self.acc = self.owed * self.delivery - self._lag(p)

    def _set_phase(self, p):
        """The cam moved back to phase ``p``: keep the volume allowance, never raise
        ``owed`` (lower it to what the geometry at ``p`` needs)."""
        self.phase = p
        x = self._lag(p)
        d = self.delivery
        need = (self.acc + x + d - 1) // d
        if need < 0:
            need = 0
        if need < self.owed:
            self.dropped += self.owed - need
            self.owed = need
        self.acc = self.owed * d - x

    def reset(self):
        """A new program: drop the old program's undelivered volume (acc to 0 .. D-1, less
        than one microstep), keep the phase and the geometry lag (never raise ``owed``)."""
        if not self.locked:
            self.dropped += self.owed
            self.owed = 0
            return
        if self.acc > 0:
            d = self.delivery
            x = self._lag(self.phase)
            need = (x + d - 1) // d
            if need < self.owed:
                self.dropped += self.owed - need
                self.owed = need
            self.acc = self.owed * d - x

    def pending(self):
        """Counted volume the cam has not delivered, a microstep or more: the drain at
        COMPLETE runs while this is true (``next(0, True)`` then turns the motor)."""
        if not self.locked:
            return self.owed > 0
        return self.acc >= self.rev

    # ---- inputs ------------------------------------------------------------------
    def observe(self, count):
        """A new encoder count (pulses since power-on, never decreasing)."""
        if not self.enc_seen:
            self.enc_seen = True
        elif count != self.enc_last and self.active:
            # the last mark passed within the last `upper + 1` forward microsteps
            upper = self.fwd - 1 - (count - self.enc_last - 1) * self.rev
            if upper >= 0 and not self.rev_seen:
                if upper >= self.rev:
                    upper = self.rev - 1
                if not self.locked:
                    self._lock(upper // 2)          # the middle of the window
                else:
                    upper += self.lock_slack
                    if upper >= self.rev:
                        upper = self.rev - 1
                    if self.phase > upper:
                        self._lock(upper)           # lost steps: the nearest phase the
                        #                             pulse allows (the ledger is kept)
        self.enc_last = count
        self.fwd = 0
        self.rev_seen = False

    def reverse(self, n):
        """The motor ran ``n`` microsteps backwards (an occlusion back-off)."""
        if n <= 0:
            return
        self.rev_seen = True
        if self.locked:
            p = (self.phase - n) % self.rev
            self._set_phase(p)

    def next(self, steps, run):
        """The core's volume microsteps of this period; returns the motor microsteps to
        issue now (0 unless ``run``: the core delivers, or drains at COMPLETE)."""
        self.owed += steps
        self.capped = False
        if not self.locked:
            if not run:
                return 0
            n = self.owed
            cap = self.refill_per_period + steps
            if n > cap:
                n = cap
                self.capped = True
            self.owed -= n
            self.fwd += n
            return n
        rev = self.rev
        d = self.delivery
        self.acc += steps * d
        if not run:
            return 0
        left = self.refill_per_period + steps
        out = 0
        p = self.phase
        while left > 0:
            if p < d:
                n = self.acc // rev
                if n > d - p:
                    n = d - p
            else:
                n = rev - p
            if n > self.owed:
                n = self.owed
            if n > left:
                n = left
            if n <= 0:
                break
            if p < d:
                self.acc -= n * rev
            p += n
            self.owed -= n
            left -= n
            out += n
            if p >= rev:
                p = 0
            elif p != d:
                break            # stopped inside a zone: allowance, ledger or cap
        if left == 0:
            self.capped = True
        self.phase = p
        self.fwd += out
        return out


def for_board(board, pulses_per_rev, period_ms, lock_slack=0):
    """The schedule of ``board``'s cam (``DELIVERY_USTEPS_PER_REV``), or None when the
    board does not declare one (no linearisation: the steps go straight to the motor)."""
    if board is None:
        return None
    delivery = getattr(board, "DELIVERY_USTEPS_PER_REV", 0)
    rev = getattr(board, "USTEPS_PER_REV", 0)
    if not delivery or not rev:
        return None
    spp = rev // pulses_per_rev if pulses_per_rev else 0
    return CamSchedule(rev, delivery, spp, REFILL_USTEPS_PER_S, period_ms, lock_slack)
