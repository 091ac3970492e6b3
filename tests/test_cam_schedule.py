"""Flow linearisation, ``firmware/cam_schedule.py`` (PT-3; SR-CORE-2: never ahead of the core).

A cam model with the reference cassette's geometry (3200 microsteps per turn, delivery
over the first 2400, one encoder mark at the delivery start, pulses counted either way
as ``sim.mechanism`` does) is driven by the schedule; volumes are counted in
"delivery microsteps" (1/2400 of a stroke) and compared with the core's count
(1/3200 of a stroke per volume microstep) in integers: ``cam * R`` against
``core * D``.
"""
from hypothesis import given, settings, strategies as st

from firmware.cam_schedule import CamSchedule, REFILL_USTEPS_PER_S, for_board

R = 3200
D = 2400
REFILL = R - D


class Cam:
    """Integer cam: absolute position, encoder count, delivered volume (delivery usteps)."""

    def __init__(self, phase=0):
        self.pos = phase
        self.enc0 = phase // R
        self.back_marks = 0

    def move(self, n):
        p0 = self.pos
        self.pos += n
        if n < 0:
            self.back_marks += p0 // R - self.pos // R

    def count(self):
        return self.pos // R - self.enc0 + 2 * self.back_marks

    def phase(self):
        return self.pos % R

    def volume(self):
        turns, within = divmod(self.pos, R)
        return turns * D + min(within, D)


class Rig:
    """One schedule, one cam, the core's cumulative count and the motor's."""

    def __init__(self, phase=0, period_ms=1000, spp=R, slack=0):
        self.cam = Cam(phase)
        self.s = CamSchedule(R, D, spp, REFILL_USTEPS_PER_S, period_ms, slack)
        self.core = 0
        self.motor = 0           # forward microsteps issued
        self.vol0 = self.cam.volume()
        self.max_c = 0

    def period(self, c, run=True):
        self.s.observe(self.cam.count())
        self.core += c
        self.max_c = max(self.max_c, c)
        n = self.s.next(c, run)
        assert n >= 0
        if not run:
            assert n == 0, "the motor moved after a stop"
        self.motor += n
        self.cam.move(n)
        return n

    def lag(self):
        return self.core - self.motor

    def volume_error(self):
        """(cam volume - counted volume) in 1/(R*D) of a stroke... as cam*R - core*D."""
        return (self.cam.volume() - self.vol0) * R - self.core * D

    def ledger_consistent(self):
        s = self.s
        if s.locked:
            x = s.phase * REFILL if s.phase <= D else D * (R - s.phase)
            assert s.acc == s.owed * D - x, (s.acc, s.owed, s.phase)


def rate_steps(ul_per_h, period_ms, n):
    """Core steps per period at ``ul_per_h`` (exact Bresenham, 15,625 pL per step)."""
    out = []
    acc = 0
    per = ul_per_h * period_ms * 64      # steps * 3.6e9 per period: 64 steps per uL
    for _ in range(n):
        acc += per
        c, acc = divmod(acc, 3600 * 1000)
        out.append(c)
    return out


# ---- SR-CORE-2: never ahead of the core ------------------------------------------------
ops = st.lists(st.tuples(st.sampled_from(["run", "run", "run", "stop", "reverse", "reset",
                                         "forget"]),
                         st.integers(0, 400)), min_size=1, max_size=400)


@settings(max_examples=300, deadline=None)
@given(phase=st.integers(0, R - 1), period_ms=st.sampled_from([10, 100, 1000]), ops=ops,
       spp=st.sampled_from([R, R, R, R // 4]))
def test_motor_never_ahead_of_core_count(phase, period_ms, ops, spp):
    """SR-CORE-2 / PT-3: whatever the core commands, stops, back-offs, program loads and
    phase losses, the motor's cumulative forward microsteps never exceed the core's count,
    the ledger never goes negative, and a stopped schedule never moves the motor."""
    rig = Rig(phase, period_ms, spp)
    stopped = False
    for op, k in ops:
        if op == "run":
            rig.period(k, True)
            stopped = False
        elif op == "stop":
            rig.period(0 if stopped else k, False)     # a stopped core commands nothing
            stopped = True
        elif op == "reverse":
            n = k * 4
            rig.cam.move(-n)
            rig.s.reverse(n)
        elif op == "reset":
            rig.s.reset()
        else:
            rig.s.forget()
        assert rig.motor <= rig.core
        assert 0 <= rig.s.owed == rig.lag() - rig.s.dropped
        rig.ledger_consistent()


# ---- PT-3: the lag bound, exactness per turn -------------------------------------------
@settings(max_examples=200, deadline=None)
@given(phase=st.integers(0, R - 1), period_ms=st.sampled_from([10, 100, 1000]),
       chunks=st.lists(st.integers(0, 1000), min_size=50, max_size=600),
       stops=st.sets(st.integers(0, 599), max_size=20))
def test_lag_bound(phase, period_ms, chunks, stops):
    """PT-3: forward running with stops and restarts (core steps up to the 500 mL/h rate):
    after every running call that was not capped by the refill speed the motor trails
    the core's count by at most one refill zone (R - D = 800 usteps); in between by at
    most that plus the steps of this period and those kept at stops since then."""
    rig = Rig(phase, period_ms)
    top = 8889 * period_ms // 1000 + 1          # the core's most per period (500 mL/h)
    stopped = False
    extra = 0                                   # kept at stops since the last uncapped call
    for i, c in enumerate(chunks):
        c = c * top // 1000
        run = i not in stops
        if not run and stopped:
            c = 0                               # a stopped core commands nothing
        rig.period(c, run)
        stopped = not run
        if not run:
            extra += c
        assert rig.lag() <= REFILL + c + extra, (i, rig.lag(), c, extra)
        if run and not rig.s.capped:
            if rig.s.locked:
                assert rig.lag() <= REFILL
            extra = 0
        rig.ledger_consistent()


@settings(max_examples=100, deadline=None)
@given(phase=st.integers(0, R - 1), rate=st.integers(1, 5000),
       period_ms=st.sampled_from([10, 1000]), stop_s=st.integers(10, 120))
def test_lag_bound_one_refill_zone_plus_one_period(phase, rate, period_ms, stop_s):
    """PT-3: at a programmed rate (0.1 .. 500 mL/h), stopped for one period every
    ``stop_s`` seconds, the motor never trails the count by more than one refill zone
    plus one period's steps, plus the steps kept at the last stop until they drained
    (the motor's spare speed, refill speed minus the rate, drains them)."""
    rig = Rig(phase, period_ms)
    stop_every = stop_s * 1000 // period_ms
    steps = rate_steps(rate * 100, period_ms, 3000)
    for i, c in enumerate(steps):
        run = i % stop_every != 0
        rig.period(c, run)
        assert rig.lag() <= REFILL + 2 * max(steps), (i, rig.lag())
        if i % stop_every > 1 + stop_every // 2 and not rig.s.capped:
            assert rig.lag() <= REFILL + max(steps), (i, rig.lag())


@settings(max_examples=200, deadline=None)
@given(turns=st.integers(1, 5), period_ms=st.sampled_from([10, 1000]),
       chunks=st.lists(st.integers(1, 500), min_size=1, max_size=50))
def test_whole_turns_are_exact(turns, period_ms, chunks):
    """PT-3: once locked at the mark, k*R volume microsteps in any chunking turn the motor
    by exactly k*R microsteps (k whole turns, back at the mark): no drift."""
    rig = Rig(0, period_ms)
    rig.s.observe(0)
    rig.s._lock(0)                  # at the mark, nothing owed
    left = turns * R
    i = 0
    while left:
        c = min(chunks[i % len(chunks)], left)
        left -= c
        rig.period(c)
        i += 1
    for _ in range(2 * R):          # let the last refill run out (no new core steps)
        if not rig.period(0):
            break
    assert rig.motor == rig.core == turns * R
    assert rig.s.phase == 0 and rig.s.owed == 0 and rig.s.acc == 0
    assert rig.cam.volume() - rig.vol0 == turns * D


# ---- PT-3: the flow is linear ----------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(phase=st.integers(0, R - 1), rate=st.sampled_from([1000, 2500, 10000, 100000]),
       period_ms=st.sampled_from([10, 1000]))
def test_cam_volume_follows_the_count(phase, rate, period_ms):
    """PT-3: after the lock, the cam's delivered volume stays within the core's steps of
    one refill run plus two periods (the refill lasts (R - D) / refill speed = 0.1 s, no
    flow while the count goes on, then the catch-up) of the count, at every period: no
    45 s without flow, no 4/3 rate.  The offset at the lock is what the first,
    pass-through, partial turn missed (0 .. a quarter stroke, never ahead)."""
    n = (3 * 3600 * 1000 * R // (rate * 64)) // period_ms + 10   # ~3 turns
    rig = Rig(phase, period_ms)
    steps = rate_steps(rate, period_ms, n)
    refill_periods = -(-REFILL // rig.s.refill_per_period)
    tol = (max(steps) * (refill_periods + 2) + 2) * D
    base = None
    for i, c in enumerate(steps):
        rig.period(c)
        if rig.s.locked and base is None:
            base = rig.volume_error()
            assert -REFILL * D - tol <= base <= tol, base
        elif base is not None:
            assert abs(rig.volume_error() - base) <= tol, (i, rig.volume_error() - base, tol)
    assert base is not None, "no lock in three turns"


# ---- phase: pass-through, lock, tracking, several marks ----------------------------------
@settings(max_examples=100, deadline=None)
@given(phase=st.integers(0, R - 1), c=st.integers(1, 200))
def test_pass_through_before_lock_then_lock_error_within_one_period(phase, c):
    """Before the first pulse the steps pass through unchanged; at the lock the phase
    error is at most one observation period's steps (the mark passed within them)."""
    rig = Rig(phase, 10)
    while True:
        rig.s.observe(rig.cam.count())
        if rig.s.locked:
            break
        assert rig.s.next(c, True) == c
        rig.core += c
        rig.motor += c
        rig.cam.move(c)
    assert abs(rig.s.phase - rig.cam.phase()) <= c // 2 + 1


def test_several_marks_per_turn_never_lock():
    """An encoder with 4 marks a turn cannot tell the delivery start: pass-through."""
    rig = Rig(1234, 1000, spp=R // 4)
    for c in rate_steps(10000, 1000, 200):
        assert rig.period(c) == c
    assert not rig.s.locked


def test_lost_steps_resync_at_the_next_pulse():
    """The cam falls behind the schedule (lost steps): the next pulse re-sets the phase
    to the nearest one it allows, without raising the ledger."""
    rig = Rig(0, 1000)
    steps = rate_steps(10000, 1000, 400)
    for c in steps[:60]:
        rig.period(c)
    assert rig.s.locked
    rig.cam.move(-100)              # the cam slipped back 100 usteps, unseen
    rig.cam.back_marks = 0 if rig.cam.phase() < 3100 else rig.cam.back_marks
    owed = rig.s.owed
    for c in steps[60:100]:
        rig.period(c)
        assert rig.motor <= rig.core
    assert abs(rig.s.phase - rig.cam.phase()) <= max(steps)
    assert rig.s.owed <= owed + max(steps) * 40


def test_reverse_tracks_the_phase_and_ignores_its_pulses():
    """A back-off moves the tracked phase back (modulo a turn); the marks it passes
    backwards are not taken for a lock; the ledger is never raised."""
    rig = Rig(0, 1000)
    for c in rate_steps(10000, 1000, 25):
        rig.period(c)
    assert rig.s.locked
    p = rig.s.phase
    off = (rig.cam.phase() - p) % R     # the lock's error, at most one period's steps
    assert off <= 178 or off >= R - 178
    owed = rig.s.owed
    n = p + 300                       # back across the mark into the last refill zone
    rig.cam.move(-n)
    rig.s.reverse(n)
    assert rig.s.phase == (p - n) % R
    assert (rig.cam.phase() - rig.s.phase) % R == off
    assert rig.s.owed <= owed
    rig.s.observe(rig.cam.count())    # the backward mark: not a lock, no re-sync
    assert rig.s.phase == (p - n) % R
    for c in rate_steps(10000, 1000, 60):
        rig.period(c)
        assert rig.motor <= rig.core
        d = (rig.cam.phase() - rig.s.phase) % R
        assert d <= 178 or d >= R - 178


# ---- stops, completion, a new program -----------------------------------------------------
def test_stop_holds_everything_and_restart_drains_the_backlog():
    """A stop (PAUSED / fault): nothing moves, the stopping period's steps are kept and
    delivered by the normal schedule after the restart (the count is what the cam gives)."""
    rig = Rig(0, 1000)
    steps = rate_steps(10000, 1000, 600)
    for c in steps[:300]:
        rig.period(c)
    owed = rig.s.owed
    assert rig.period(150, run=False) == 0
    for _ in range(30):
        assert rig.period(0, run=False) == 0
    assert rig.s.owed == owed + 150
    for c in steps[300:]:
        rig.period(c)
        assert rig.motor <= rig.core
    assert rig.s.acc < R                     # the kept volume went out


def test_complete_drains_the_counted_volume_only():
    """COMPLETE: draining delivers the counted volume still in the allowance and stops;
    the geometry lag is not turned out (that would push up to a quarter stroke beyond
    the VTBI): the cam's volume then equals the count within one microstep."""
    rig = Rig(0, 10)
    for c in rate_steps(10000, 10, 40000):
        rig.period(c)
    rig.period(0)
    assert rig.s.locked
    base = rig.volume_error()
    rig.period(37)                            # the last period of the VTBI
    drains = 0
    while rig.s.pending():
        rig.period(0, True)
        drains += 1
        assert drains < 100
    assert not rig.s.pending()
    assert abs(rig.volume_error() - base) < R * D // REFILL
    assert rig.motor <= rig.core


def test_reset_drops_the_old_programs_volume_keeps_the_phase():
    rig = Rig(0, 1000)
    for c in rate_steps(10000, 1000, 120):
        rig.period(c)
    rig.period(170, run=False)                # stopped with a backlog
    phase, owed = rig.s.phase, rig.s.owed
    rig.s.reset()
    assert rig.s.phase == phase and rig.s.locked
    assert rig.s.owed <= owed
    assert 0 <= rig.s.acc < D
    rig.ledger_consistent()


def test_forget_passes_through_again():
    rig = Rig(0, 1000)
    for c in rate_steps(10000, 1000, 40):
        rig.period(c)
    rig.s.forget()
    assert not rig.s.locked and rig.s.owed == 0
    assert rig.period(17) == 17


def test_for_board_reads_the_cam_geometry():
    class Board:
        USTEPS_PER_REV = 3200
        DELIVERY_USTEPS_PER_REV = 2400

    s = for_board(Board, 1, 1000)
    assert s.rev == 3200 and s.delivery == 2400 and s.active
    assert s.refill_per_period == REFILL_USTEPS_PER_S
    assert not for_board(Board, 4, 10).active
    assert for_board(None, 1, 10) is None

    class Old:
        USTEPS_PER_REV = 3200

    assert for_board(Old, 1, 10) is None


def test_board_files_declare_the_cam():
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for rel in ("hal/sim/board_sim.py", "hal/rp2040/board_pico.py", "hal/esp32/board_devkit.py"):
        ns = {}
        exec(compile(open(os.path.join(root, rel)).read(), rel, "exec"), ns)
        assert ns["DELIVERY_USTEPS_PER_REV"] == 2400 and ns["USTEPS_PER_REV"] == 3200, rel
