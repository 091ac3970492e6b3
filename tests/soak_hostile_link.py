"""Hostile-link soak (issue 6 item 6, SR-SVC-1/2): generated frames thrown at an infusing pump.

Owns the generator of bad and good traffic and the verdict.  The virtual pump here is the
firmware on the sim HAL in process (the same PumpApp, service server and physics that
``pumpctl sim`` serves on a pseudo-terminal, without the pty), so 100,000 frames take
seconds, not hours.  A provisioned pump with a library infuses 10 mL/h while it receives,
in a seeded random mix:

    garbage      random bytes between delimiters
    bad_crc      a valid frame with one byte changed
    truncated    a valid frame cut short
    oversized    a frame longer than MAX_BODY
    unknown      an unknown command code
    bad_args     LOG_READ with the wrong payload size
    unauth       write commands without a valid session MAC
    replayed     a captured authenticated write sent again
    replay_login a captured login answer sent again
    out_of_order valid authenticated library writes out of order (chunk/commit without a
                 load, wrong offsets) while the pump infuses
    reads        IDENTIFY, STATUS, LOG_READ, KEY_STATUS

Verdict: no exception reached the control cycle (no ERROR event, ``app.last_error`` None),
no therapy interruption (RUNNING every cycle, no alarm above LOW), delivery on schedule
(the core's delivered volume equals rate x time within one microstep, and the mechanism
moved it), every well-formed request answered exactly once with its request id, and the
flood did not wash the event log (SR-LOG-1): after the flood the pump runs on for two
rate-limit windows, then the rate-limited records (SERVICE_FRAME_REJECTED,
SERVICE_REJECTS_ENDED) account for every error reply the host received, and there are at
most three more of them per error code than minutes of flood.

    python -m tests.soak_hostile_link --frames 100000      (make soak)
"""
import argparse
import random
import struct
import sys
import time

import safety_core as sc
from firmware import alarms as al
from firmware import eventlog, events
from firmware import protocol as p
from firmware import service
from tests.mpy import svc_client as sv

RATE_UL_PER_H = 10000
WRITE_CODES = (p.LIBRARY_LOAD, p.LIBRARY_CHUNK, p.LIBRARY_COMMIT, p.CLOCK_SET, p.CONFIG_SET,
               p.CALIBRATION_SET, p.KEY_CHANGE)
KNOWN_CODES = set((p.IDENTIFY, p.STATUS, p.LOG_READ, p.KEY_STATUS, p.LIBRARY_INFO,
                   p.LOGIN_CHALLENGE, p.LOGIN, p.KEY_PROVISION, p.LOGOUT) + WRITE_CODES)
FRAME_LEVEL_ERRORS = (p.E_BAD_CRC, p.E_MALFORMED, p.E_OVERSIZE, p.E_BAD_VERSION)
RX_HIGH_WATER = 1500        # bytes waiting at the pump before the generator pauses a cycle


class Soak:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.bench = sv.provisioned_bench(library=sv.LIB, cycle_ms=100)
        b = self.bench
        self.app = b.app
        self.login_answer = b.login()                 # a fresh session; the answer is kept
        self.captured_write = None
        self.sent = {}                                # category -> frames
        self.outstanding = {}                         # request id -> category (must answer)
        self.answered = 0                             # well-formed requests answered
        self.unexpected = 0                           # replies to nothing outstanding
        self.errors = {}                              # error name -> count
        self.rid = 1000
        self.cycles = 0
        self.interruptions = []
        self.app.program_continuous(RATE_UL_PER_H, 9999000)
        self.app.start()
        self.start_nl = self.app.core.delivered_nl()
        self.start_ms = b.world.t_ms
        self.start_pumped_ul = b.world.pumped_ul

    # ---- frames -----------------------------------------------------------------------
    def _rid(self):
        self.rid = (self.rid + 1) & 0xFFFF or 1
        return self.rid

    def _request(self, category, code, payload=b""):
        rid = self._rid()
        self.outstanding[rid] = category   # ids wrap after 65,536: long answered by then
        return p.encode_frame(rid, code, payload)

    def _valid_write(self, code, body):
        """An authenticated write with the next sequence number (the session's own)."""
        return self.bench.frame(code, body)

    def make(self, category):
        r = self.rng
        if category == "garbage":
            return bytes(r.randrange(1, 256) for _ in range(r.randrange(1, 120))) + b"\x00"
        if category == "bad_crc":
            f = bytearray(p.encode_frame(self._rid(), p.STATUS))
            i = r.randrange(0, len(f) - 1)
            f[i] = (f[i] % 255) + 1 if f[i] != 255 else 1
            return bytes(f)
        if category == "truncated":
            f = p.encode_frame(self._rid(), p.LOG_READ, struct.pack("<IH", 1, 5))
            return f[:r.randrange(1, len(f) - 1)] + b"\x00"
        if category == "oversized":
            return bytes(r.randrange(1, 256) for _ in range(r.randrange(1100, 1600))) + b"\x00"
        if category == "unknown":
            code = r.choice([c for c in range(0x7F) if c not in KNOWN_CODES])
            return self._request(category, code, bytes(r.randrange(256) for _ in range(8)))
        if category == "bad_args":
            return self._request(category, p.LOG_READ, bytes(r.randrange(0, 6)))
        if category == "unauth":
            body = bytes(r.randrange(256) for _ in range(r.randrange(0, 60)))
            return self._request(category, r.choice(WRITE_CODES), body)
        if category == "replayed":
            code, payload = self.captured_write
            return self._request(category, code, payload)
        if category == "replay_login":
            return self._request(category, p.LOGIN, self.login_answer)
        if category == "out_of_order":
            choice = r.randrange(3)
            if choice == 0:
                payload = self._valid_write(p.LIBRARY_CHUNK,
                                            struct.pack("<I", r.randrange(0, 200000)) + b"x" * 16)
                return self._request(category, p.LIBRARY_CHUNK, payload)
            if choice == 1:
                payload = self._valid_write(p.LIBRARY_COMMIT, bytes(32))
                return self._request(category, p.LIBRARY_COMMIT, payload)
            payload = self._valid_write(p.LIBRARY_LOAD, struct.pack("<I", len(sv.LIB)) +
                                        sv.sha256(sv.LIB))
            return self._request(category, p.LIBRARY_LOAD, payload)
        code = r.choice((p.IDENTIFY, p.STATUS, p.LOG_READ, p.KEY_STATUS))
        payload = struct.pack("<IH", r.randrange(1, 50), 10) if code == p.LOG_READ else b""
        return self._request("reads", code, payload)

    # ---- the run ------------------------------------------------------------------------------
    CATEGORIES = ("garbage", "bad_crc", "truncated", "oversized", "unknown", "bad_args",
                  "unauth", "replayed", "replay_login", "out_of_order", "reads")
    WEIGHTS = (10, 10, 10, 3, 10, 10, 12, 8, 2, 10, 15)

    def _cycle(self):
        b = self.bench
        b.app.cycle()
        b.world.advance(b.cycle_ms)
        self.cycles += 1
        for item in b.decoder.feed(b.port.drain()):
            if isinstance(item, p.FrameError):
                self.errors["garbled reply"] = self.errors.get("garbled reply", 0) + 1
                continue
            rid, code, payload = item
            if code == p.ERROR:
                err, name, _ = p.parse_error(payload)
                self.errors[name] = self.errors.get(name, 0) + 1
                if err in FRAME_LEVEL_ERRORS:
                    continue          # the request id of a damaged frame means nothing
            if self.outstanding.pop(rid, None) is None:
                self.unexpected += 1
            else:
                self.answered += 1
        app = self.app
        if app.core.phase != sc.PHASE_RUNNING or app.alarms.top_priority() > al.PRIORITY_LOW:
            self.interruptions.append((self.cycles, app.core.phase, app.alarms.top()))

    def run(self, frames):
        b = self.bench
        # one real write captured for the replays (answered, then replayed many times)
        payload = self._valid_write(p.CLOCK_SET,
                                    struct.pack("<I", 1795000000))
        self.captured_write = (p.CLOCK_SET, payload)
        b.port.feed(self._request("replayed", p.CLOCK_SET, payload))
        sent = 0
        t0 = time.monotonic()
        while sent < frames:
            while len(b.port.rx) < RX_HIGH_WATER and sent < frames:
                category = self.rng.choices(self.CATEGORIES, self.WEIGHTS)[0]
                b.port.feed(self.make(category))
                self.sent[category] = self.sent.get(category, 0) + 1
                sent += 1
            self._cycle()
        for _ in range(50):                       # let the pump answer the tail
            if not b.port.rx:
                break
            self._cycle()
        self._cycle()
        self.flood_ms = b.world.t_ms - self.start_ms
        # two rate-limit windows more: the last counts and the ends of the episodes logged
        for _ in range(2 * service.REJECT_WINDOW_MS // b.cycle_ms + 1):
            self._cycle()
        self.wall_s = time.monotonic() - t0
        return self.verdict()

    def verdict(self):
        b = self.bench
        app = self.app
        elapsed_ms = b.world.t_ms - self.start_ms
        expected_nl = RATE_UL_PER_H * elapsed_ms // 3600          # uL/h * ms / 3600 = nL
        delivered_nl = app.core.delivered_nl() - self.start_nl
        records = [eventlog.decode(raw) for raw in app.log.read(1, 1000000)]
        crashes = [r for r in records if r[1] == events.ERROR]
        by_type = {}
        for r in records:
            name = events.name(r[1])
            by_type[name] = by_type.get(name, 0) + 1
        rejected = [r for r in records if r[1] == events.SERVICE_FRAME_REJECTED]
        ended = [r for r in records if r[1] == events.SERVICE_REJECTS_ENDED]
        return {
            "frames": sum(self.sent.values()), "sent": dict(sorted(self.sent.items())),
            "error_replies": dict(sorted(self.errors.items())),
            "cycles": self.cycles, "sim_s": elapsed_ms / 1000.0, "wall_s": self.wall_s,
            "crashes": len(crashes) + (0 if app.last_error is None else 1),
            "interruptions": len(self.interruptions),
            "first_interruption": self.interruptions[:1],
            "delivered_nl": delivered_nl, "expected_nl": expected_nl,
            "pumped_ul": b.world.pumped_ul - self.start_pumped_ul,
            "answered": self.answered, "unanswered": len(self.outstanding),
            "answered_twice": self.unexpected,
            "log_records": dict(sorted(by_type.items())),
            "flood_minutes": (self.flood_ms + 59999) // 60000,
            "error_codes": len(set(r[4] & 0xFF for r in rejected)),
            "error_replies_total": sum(n for k, n in self.errors.items()
                                       if k != "garbled reply"),
            "rejection_records": len(rejected) + len(ended),
            "rejections_logged": sum(r[5] for r in rejected),
            "rejections_ended": sum(r[5] for r in ended),
        }


def log_bounded(v):
    """Every error reply accounted for in a bounded number of rate-limited records."""
    return (v["rejections_logged"] == v["error_replies_total"] == v["rejections_ended"] and
            v["rejection_records"] <= v["error_codes"] * (v["flood_minutes"] + 3))


def ok(v):
    return (v["crashes"] == 0 and v["interruptions"] == 0 and v["unanswered"] == 0 and
            v["answered_twice"] == 0 and abs(v["delivered_nl"] - v["expected_nl"]) <= 16 and
            log_bounded(v))


def report(v):
    print("hostile-link soak: %d frames at an infusing pump in %.1f s wall (%d cycles, %.0f s "
          "of pump time)" % (v["frames"], v["wall_s"], v["cycles"], v["sim_s"]))
    print("  sent:          " + ", ".join("%s %d" % kv for kv in v["sent"].items()))
    print("  error replies: " + ", ".join("%s %d" % kv for kv in v["error_replies"].items()))
    print("  crashes %d, therapy interruptions %d; well-formed requests answered %d, "
          "unanswered %d, answered twice %d" % (v["crashes"], v["interruptions"], v["answered"],
                                                v["unanswered"], v["answered_twice"]))
    print("  delivery: %.3f mL by the core vs %.3f mL scheduled (10 mL/h); mechanism moved "
          "%.3f mL" % (v["delivered_nl"] / 1e6, v["expected_nl"] / 1e6, v["pumped_ul"] / 1e3))
    print("  event log: %d error replies in %d rate-limited records over %d min of flood "
          "(%d error codes); %s" % (v["error_replies_total"], v["rejection_records"],
                                   v["flood_minutes"], v["error_codes"],
                                   ", ".join("%s %d" % kv for kv in v["log_records"].items())))
    print("  verdict: %s" % ("PASS" if ok(v) else "FAIL"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    v = Soak(args.seed).run(args.frames)
    report(v)
    return 0 if ok(v) else 1


if __name__ == "__main__":
    sys.exit(main())
