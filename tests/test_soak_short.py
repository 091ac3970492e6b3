"""Short hostile-link soak in `make test` (issue 6 item 6; `make soak` runs 100,000 frames).

Every kind of bad frame is thrown at an infusing pump: no crash, no therapy interruption,
delivery on schedule, every well-formed request answered once (SR-SVC-1, SR-SVC-2), and
every error reply is in the event log, counted in a bounded number of rate-limited
records (SR-LOG-1).
"""
from firmware import events
from tests.soak_hostile_link import Soak, log_bounded, ok

_RUNS = {}


def _soak():
    """One short soak shared by the tests of this module (it takes seconds)."""
    if "v" not in _RUNS:
        _RUNS["v"] = Soak(seed=7).run(6000)
    return _RUNS["v"]


def test_hostile_frames_never_interrupt_therapy_SR_SVC_1_SR_SVC_2():
    v = _soak()
    assert v["crashes"] == 0 and v["interruptions"] == 0, v
    assert v["unanswered"] == 0 and v["answered_twice"] == 0, v
    assert abs(v["delivered_nl"] - v["expected_nl"]) <= 16, v
    assert v["pumped_ul"] > 0
    for category in Soak.CATEGORIES:                 # every kind was really sent
        assert v["sent"].get(category, 0) > 0, category
    for name in ("BAD_CRC", "MALFORMED", "OVERSIZE", "UNKNOWN_COMMAND", "BAD_ARGS",
                 "NOT_AUTHORISED", "BUSY"):          # and refused with its own code
        assert v["error_replies"].get(name, 0) > 0, (name, v["error_replies"])
    assert ok(v)


def test_hostile_frames_logged_rate_limited_SR_LOG_1():
    v = _soak()
    total = v["error_replies_total"]
    assert total > 3000, v                           # the flood really was one
    # every error reply counted once in the rate-limited records, and each episode ended
    assert v["rejections_logged"] == total and v["rejections_ended"] == total, v
    # seven error codes over a flood of under a minute: a handful of records, not thousands
    assert v["error_codes"] >= 7, v
    assert v["rejection_records"] <= v["error_codes"] * (v["flood_minutes"] + 3), v
    assert v["log_records"]["SERVICE_FRAME_REJECTED"] <= 3 * v["error_codes"], v
    assert log_bounded(v)
    # nothing of the flood reached the log one frame at a time but the authenticated
    # writes (each one is logged, SR-LOG-1): the rest is the boot, the setup and a
    # handful of records whatever the number of frames
    assert v["log_records"].get(events.name(events.ERROR), 0) == 0, v
    per_frame = ("SERVICE_COMMAND", "SERVICE_FRAME_REJECTED", "SERVICE_REJECTS_ENDED")
    assert sum(n for k, n in v["log_records"].items() if k not in per_frame) < 30, v
