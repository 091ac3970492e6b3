"""What the service link writes to the event log (SR-LOG-1, issue 9 item 1): logins (good,
failed, lockout), logouts and timeouts, every state-changing command, clock set, library
loaded and every reason of a rejection, key changes, and bad frames, rate-limited so that
a flood of any length writes a bounded number of records.  Portable: CPython and
MicroPython (tests/mpy/svc_client.py drives the pump).
"""
import struct

from firmware import alarms as al
from firmware import auth as au
from firmware import eventlog, events
from firmware import library_store as ls
from firmware import protocol as p
from firmware import service
from firmware.crc import crc32
from tests.mpy.svc_client import (FLEET_KEY, KEY_SELECT, LIB, TECH_KEY, Bench, PumpError,
                                  provisioned_bench, resign, sha256)

OTHER_KEY = bytes(range(200, 232))
WINDOW_CYCLES = service.REJECT_WINDOW_MS // 100      # Bench cycles are 100 ms
RATE_LIMITED = (events.SERVICE_FRAME_REJECTED, events.SERVICE_REJECTS_ENDED)


def _records(b, since=0):
    """(type, a, b) of every record after sequence number ``since``."""
    return [(r[1], r[4], r[5]) for r in (eventlog.decode(raw)
                                         for raw in b.app.log.read(since + 1, 1000000))]


def _without_rejections(recs):
    return [r for r in recs if r[0] not in RATE_LIMITED]


def _rejected(err, command=0, n=1):
    return (events.SERVICE_FRAME_REJECTED, err | command << 8, n)


def _clock(t):
    return struct.pack("<I", t)


# ---- logins and sessions --------------------------------------------------------------------
def test_good_login_logged_with_its_counter_SR_LOG_1():
    b = Bench()
    b.provision()
    seq = b.app.log.last_seq
    nonce, counter, serial = b.challenge()
    b.request(p.LOGIN, b.answer_for(nonce, counter, serial))
    assert _records(b, seq) == [(events.SERVICE_LOGIN, 1, counter),
                                (events.ALARM_RAISED, al.SERVICE_SESSION, al.PRIORITY_LOW)]


def test_failed_logins_and_the_lockout_logged_SR_LOG_1():
    b = provisioned_bench()
    b.write(p.LOGOUT)
    seq = b.app.log.last_seq
    for _ in range(au.FREE_FAILURES):
        nonce, counter, serial = b.challenge()
        b.error_of(p.LOGIN, b.answer_for(nonce, counter, serial, OTHER_KEY))
    nl = p.E_NOT_AUTHORISED
    assert _records(b, seq) == [
        (events.SERVICE_LOGIN, 0, 1), _rejected(nl, p.LOGIN),     # first NOT_AUTHORISED
        (events.SERVICE_LOGIN, 0, 2), (events.SERVICE_LOGIN, 0, 3),
        (events.SERVICE_LOCKOUT, au.LOCKOUT_FIRST_S, 3)]
    # during the lockout challenges are refused: counted, not logged one by one
    seq = b.app.log.last_seq
    for _ in range(5):
        assert "locked out" in b.error_of(p.LOGIN_CHALLENGE)[1]
    assert _records(b, seq) == []
    b.cycle(110)                                     # lockout over (11 s)
    nonce, counter, serial = b.challenge()
    b.error_of(p.LOGIN, b.answer_for(nonce, counter, serial, OTHER_KEY))
    assert _records(b, seq) == [(events.SERVICE_LOGIN, 0, 4),
                                (events.SERVICE_LOCKOUT, 2 * au.LOCKOUT_FIRST_S, 4)]
    b.cycle(WINDOW_CYCLES)                 # the window's count: 2 logins, 5 challenges, 1
    assert _records(b, seq)[-1] == _rejected(nl, p.LOGIN, 8)


def test_logout_timeout_and_new_login_logged_with_writes_SR_LOG_1():
    b = provisioned_bench()
    b.write(p.CLOCK_SET, _clock(1800000000))
    seq = b.app.log.last_seq
    b.write(p.LOGOUT)                                # 2 writes, LOGOUT included
    assert _records(b, seq) == [(events.SERVICE_LOGOUT, 0, 2), (events.ALARM_CLEARED, al.SERVICE_SESSION, 0),
                                (events.SERVICE_COMMAND, p.LOGOUT, 0)]
    b.login()
    seq = b.app.log.last_seq
    b.cycle(3010)                                    # 5 min 1 s without a write
    assert _records(b, seq) == [(events.SERVICE_LOGOUT, 1, 0), (events.ALARM_CLEARED, al.SERVICE_SESSION, 0)]
    b.login()
    b.write(p.CLOCK_SET, _clock(1800000000))
    seq = b.app.log.last_seq
    nonce, counter, serial = b.challenge()           # a new login ends the session
    b.request(p.LOGIN, b.answer_for(nonce, counter, serial))
    assert _records(b, seq)[:2] == [(events.SERVICE_LOGOUT, 2, 1),
                                    (events.SERVICE_LOGIN, 1, counter)]


# ---- commands -------------------------------------------------------------------------------
def test_clock_set_logged_old_and_new_time_SR_LOG_1():
    b = provisioned_bench()
    old = b.hal.clock.rtc_s()
    seq = b.app.log.last_seq
    assert struct.unpack("<I", b.write(p.CLOCK_SET, _clock(1800000123)))[0] == old
    assert _records(b, seq) == [(events.CLOCK_SET, old, 1800000123),
                                (events.SERVICE_COMMAND, p.CLOCK_SET, 0)]
    # a malformed clock write is logged as the command with its error, the clock unchanged
    seq = b.app.log.last_seq
    b.error_of(p.CLOCK_SET, b.frame(p.CLOCK_SET, b"\x01\x02"))
    assert _without_rejections(_records(b, seq)) == [
        (events.SERVICE_COMMAND, p.CLOCK_SET, p.E_BAD_ARGS)]
    assert b.hal.clock.rtc_s() - 1800000123 < 10


def test_every_state_changing_command_logged_with_its_result_SR_LOG_1():
    b = provisioned_bench()
    seq = b.app.log.last_seq
    assert b.load(LIB) == (42, 3)                    # begin, chunks (not logged), commit
    assert _records(b, seq) == [(events.SERVICE_COMMAND, p.LIBRARY_LOAD, 0),
                                (events.LIBRARY_LOADED, 42, 3),
                                (events.SERVICE_COMMAND, p.LIBRARY_COMMIT, 0)]
    for code in (p.CONFIG_SET, p.CALIBRATION_SET):   # not supported yet: logged refused
        seq = b.app.log.last_seq
        assert b.error_of(code, b.frame(code, b"x"))[0] == p.E_UNKNOWN_COMMAND
        assert _without_rejections(_records(b, seq)) == [
            (events.SERVICE_COMMAND, code, p.E_UNKNOWN_COMMAND)]
    # the library refused while infusing: BUSY, logged
    b.app.program_continuous(10000, 20000)
    b.app.start()
    seq = b.app.log.last_seq
    assert b.error_of(p.LIBRARY_LOAD, b.frame(p.LIBRARY_LOAD, struct.pack("<I", len(LIB)) +
                                              sha256(LIB)))[0] == p.E_BUSY
    assert _without_rejections(_records(b, seq)) == [
        (events.SERVICE_COMMAND, p.LIBRARY_LOAD, p.E_BUSY)]


def test_key_provision_and_key_change_logged_SR_LOG_1():
    b = Bench()
    seq = b.app.log.last_seq
    b.request(p.KEY_PROVISION, TECH_KEY + FLEET_KEY)      # not confirmed on the pump
    b.cycle(310)
    assert _records(b, seq) == [(events.SERVICE_COMMAND, p.KEY_PROVISION, p.E_NOT_AUTHORISED)]
    seq = b.app.log.last_seq
    b.request(p.KEY_PROVISION, TECH_KEY + FLEET_KEY)
    b.hal.buttons.press(KEY_SELECT)
    b.cycle(2)
    assert _records(b, seq) == [(events.KEYS_CHANGED, 3, 1)]
    b.login()
    seq = b.app.log.last_seq
    body = bytes((1,)) + au.wrap(b.session_key, b.seq + 1, OTHER_KEY + bytes(32))
    b.write(p.KEY_CHANGE, body)
    assert _records(b, seq) == [(events.KEYS_CHANGED, 1, 2),
                                (events.SERVICE_COMMAND, p.KEY_CHANGE, 0)]


# ---- library rejected, every reason the link can bring about ---------------------------------
def _with_header(data, offset, raw):
    b = bytearray(data)
    b[offset:offset + len(raw)] = raw
    return resign(bytes(b))


def _refused_load(b, data):
    """Load ``data``: refused; the records it left (rate-limited ones aside)."""
    seq = b.app.log.last_seq
    try:
        b.load(data)
        assert False, "accepted"
    except PumpError as e:
        assert e.code in (p.E_REFUSED, p.E_STORAGE), e
    assert b.active() == (42, 3)
    return _without_rejections(_records(b, seq))


def test_library_rejected_logged_with_each_reason_SR_LOG_1():
    b = provisioned_bench(LIB)
    damaged = bytearray(resign(LIB, version=5))
    damaged[100] ^= 0x10                             # after signing: CRC mismatch
    other_key = resign(LIB, key=OTHER_KEY, version=6)
    cases = (
        (bytes(damaged), ls.R_CRC),
        (other_key, ls.R_TAG),
        (resign(LIB, version=7, model="AMB-PUMP-2"), ls.R_MODEL),
        (_with_header(LIB, 4, struct.pack("<H", 2)), ls.R_SCHEMA),
        (_with_header(LIB, 0, b"XLIB"), ls.R_LIBRARY),          # bad magic
        (resign(LIB, version=8) + b"\x01" * 8, ls.R_TRUNCATED),  # longer than declared
    )
    for data, reason in cases:
        recs = _refused_load(b, data)
        assert recs == [(events.SERVICE_COMMAND, p.LIBRARY_LOAD, 0),
                        (events.LIBRARY_REJECTED, reason, 0),
                        (events.SERVICE_COMMAND, p.LIBRARY_COMMIT, p.E_REFUSED)], (reason, recs)
    # refused at LIBRARY_LOAD, before any byte: a size no slot takes
    seq = b.app.log.last_seq
    err, msg = b.error_of(p.LIBRARY_LOAD, b.frame(p.LIBRARY_LOAD, struct.pack("<I", 20) +
                                                  sha256(b"x")))
    assert err == p.E_REFUSED and "a slot takes" in msg
    assert _without_rejections(_records(b, seq)) == [
        (events.LIBRARY_REJECTED, ls.R_TRUNCATED, 0),
        (events.SERVICE_COMMAND, p.LIBRARY_LOAD, p.E_REFUSED)]
    # no fleet key to check it with
    fleet = b.app.keys.fleet_key
    b.app.keys.fleet_key = None
    seq = b.app.log.last_seq
    err, msg = b.error_of(p.LIBRARY_LOAD, b.frame(p.LIBRARY_LOAD, struct.pack("<I", len(LIB)) +
                                                  sha256(LIB)))
    assert err == p.E_REFUSED and "no fleet key" in msg
    assert _without_rejections(_records(b, seq)) == [
        (events.LIBRARY_REJECTED, ls.R_NO_FLEET_KEY, 0),
        (events.SERVICE_COMMAND, p.LIBRARY_LOAD, p.E_REFUSED)]
    b.app.keys.fleet_key = fleet
    assert b.active() == (42, 3)


def test_library_slot_unreadable_at_commit_logged_as_storage_SR_LOG_1():
    b = provisioned_bench(LIB)
    storage = b.app.libraries.storage
    real_open = storage.open
    data = resign(LIB, version=9)
    have, max_chunk = b.begin(data)
    while have < len(data):
        r = b.write(p.LIBRARY_CHUNK, struct.pack("<I", have) + data[have:have + max_chunk])
        have = struct.unpack("<I", r)[0]

    def failing_open(name, mode="rb"):
        if name in ls.SLOTS and mode == "rb":
            raise OSError(5)
        return real_open(name, mode)
    storage.open = failing_open
    seq = b.app.log.last_seq
    try:
        assert b.error_of(p.LIBRARY_COMMIT, b.frame(p.LIBRARY_COMMIT, sha256(data)))[0] == \
            p.E_STORAGE
    finally:
        storage.open = real_open
    assert _without_rejections(_records(b, seq)) == [
        (events.LIBRARY_REJECTED, ls.R_STORAGE, 0),
        (events.SERVICE_COMMAND, p.LIBRARY_COMMIT, p.E_STORAGE)]
    assert b.active() == (42, 3)


# ---- bad frames: logged, rate-limited -----------------------------------------------------------
def _bad_version_frame(rid):
    body = bytearray(struct.pack("<BHB", 2, rid, p.STATUS))
    body += struct.pack("<I", crc32(body))
    out = bytearray(len(body) + 2)
    end = p._cobs_encode_into(body, len(body), out)
    return bytes(out[:end]) + b"\x00"


def _bad_crc_frame(rid):
    """A STATUS frame with one byte changed (never to 0x00) that decodes to BAD_CRC."""
    good = p.encode_frame(rid, p.STATUS)
    for i in range(len(good) - 2, 0, -1):
        f = bytearray(good)
        f[i] = f[i] % 254 + 1
        items = p.FrameDecoder().feed(f)
        if len(items) == 1 and isinstance(items[0], p.FrameError) and \
                items[0].code == p.E_BAD_CRC:
            return bytes(f)
    raise AssertionError("no BAD_CRC frame")


def _bad_frames():
    """(error code, command logged, frame) of every kind of bad frame."""
    return ((p.E_BAD_CRC, 0, _bad_crc_frame(1)),
            (p.E_MALFORMED, 0, b"\x01\x00"),
            (p.E_OVERSIZE, 0, b"\x05" * 1100 + b"\x00"),
            (p.E_BAD_VERSION, 0, _bad_version_frame(2)),
            (p.E_UNKNOWN_COMMAND, 0x55, p.encode_frame(3, 0x55)),
            (p.E_BAD_ARGS, p.LOG_READ, p.encode_frame(4, p.LOG_READ, b"\x01")),
            (p.E_NOT_AUTHORISED, p.CLOCK_SET, p.encode_frame(5, p.CLOCK_SET, b"xxxx")))


def _feed(b, data):
    b.port.feed(data)
    for _ in range(100):
        b.cycle()
        b.port.drain()
        if not b.port.rx:
            return
    raise AssertionError("the pump did not read its input")


def test_bad_frames_logged_rate_limited_SR_LOG_1():
    b = Bench()
    b.provision()
    for err, command, frame in _bad_frames():
        seq = b.app.log.last_seq
        _feed(b, frame)                              # the first: logged at once
        assert _records(b, seq) == [_rejected(err, command, 1)], (err, _records(b, seq))
        for _ in range(4):                           # more within the window: counted only
            _feed(b, frame)
        b.cycle(10)
        assert _records(b, seq) == [_rejected(err, command, 1)], err
        b.cycle(WINDOW_CYCLES)                       # the window's count
        assert _records(b, seq) == [_rejected(err, command, 1), _rejected(err, command, 4)]
        b.cycle(WINDOW_CYCLES)                       # a whole window without one: the end
        assert _records(b, seq) == [_rejected(err, command, 1), _rejected(err, command, 4),
                                    (events.SERVICE_REJECTS_ENDED, err, 5)], err
        b.cycle(WINDOW_CYCLES)
        assert b.app.log.last_seq == seq + 3, err    # and nothing more
    # a lone bad frame: one record, no end record; the next one opens a new episode
    seq = b.app.log.last_seq
    _feed(b, b"\x01\x00")
    b.cycle(3 * WINDOW_CYCLES)
    _feed(b, b"\x01\x00")
    assert _records(b, seq) == [_rejected(p.E_MALFORMED), _rejected(p.E_MALFORMED)]
    # good frames are never counted
    seq = b.app.log.last_seq
    b.request(p.STATUS)
    b.request(p.IDENTIFY)
    b.cycle(3 * WINDOW_CYCLES)
    assert _records(b, seq) == []


def test_flood_of_100000_bad_frames_writes_a_bounded_number_of_records_SR_LOG_1():
    """100,000 bad frames of seven kinds over about 17 minutes of pump time: at most 10
    records per minute of flood, and the counts in them add up to every frame."""
    b = Bench(cycle_ms=1000)
    b.provision()
    kinds = _bad_frames()
    batch = b""
    per_kind = {}
    for err, command, frame in kinds:
        n = 1 if err == p.E_OVERSIZE else 15
        batch += frame * n
        per_kind[err] = n
    frames_per_batch = sum(per_kind.values())
    start_seq = b.app.log.last_seq
    start_ms = b.world.t_ms
    batches = 0
    while batches * frames_per_batch < 100000 or b.port.rx:
        if batches * frames_per_batch < 100000 and len(b.port.rx) < 1024:
            b.port.feed(batch)                   # about what the pump reads in a cycle
            batches += 1
        b.cycle()
        b.port.drain()
    flood_ms = b.world.t_ms - start_ms
    minutes = (flood_ms + 59999) // 60000
    flood_recs = _records(b, start_seq)
    b.cycle(2 * service.REJECT_WINDOW_MS // 1000 + 1)    # the last counts and the ends
    recs = _records(b, start_seq)
    assert batches * frames_per_batch >= 100000 and minutes >= 15, (batches, minutes)
    assert len(flood_recs) <= 10 * minutes, (len(flood_recs), minutes)
    assert len(recs) <= len(kinds) * (minutes + 3), (len(recs), minutes)
    assert all(r[0] in RATE_LIMITED for r in recs), [r for r in recs if r[0] not in RATE_LIMITED]
    for err, command, frame in kinds:
        counted = sum(r[2] for r in recs if r[0] == events.SERVICE_FRAME_REJECTED and
                      r[1] & 0xFF == err)
        ended = [r[2] for r in recs if r[0] == events.SERVICE_REJECTS_ENDED and r[1] == err]
        assert counted == per_kind[err] * batches and ended == [counted], (err, counted, ended)
    assert b.app.service.rejected == batches * frames_per_batch


def test_counting_a_rejected_frame_allocates_nothing_PT_8():
    b = Bench()
    b.provision()
    srv = b.app.service
    _feed(b, b"\x01\x00")                             # the episode is open
    try:
        import micropython
        lock, unlock = micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):            # CPython: the same calls, unlocked
        lock = unlock = lambda: None
    now = b.hal.clock.ticks_ms()
    lock()
    try:
        for _ in range(100):
            srv._rejected(p.E_MALFORMED)
            srv._reject_tick(now)
    finally:
        unlock()
    assert srv._rej[0][p.E_MALFORMED] == 100           # counted since the first record
