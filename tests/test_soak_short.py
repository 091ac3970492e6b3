"""Short hostile-link soak in `make test` (issue 6 item 6; `make soak` runs 100,000 frames).

Every kind of bad frame is thrown at an infusing pump: no crash, no therapy interruption,
delivery on schedule, every well-formed request answered once (SR-SVC-1, SR-SVC-2).
"""
from tests.soak_hostile_link import Soak, ok


def test_hostile_frames_never_interrupt_therapy_SR_SVC_1_SR_SVC_2():
    v = Soak(seed=7).run(6000)
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
