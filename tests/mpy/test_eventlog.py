"""Event log (SR-LOG-2, SR-LOG-3): CRC-32, hash chain, segment ring, power cut at any byte."""
from firmware import eventlog as el
from firmware import events
from hal.sim import RamStorage
from hal.sim.storage import PowerCut


class FakeClock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def rtc_s(self):
        return 1795000000 + self.t // 1000


def test_append_read_decode():
    log = el.EventLog(RamStorage(), FakeClock())
    for i in range(5):
        assert log.append(events.ALARM_RAISED, i, -i) == i + 1
    recs = log.read(2, 10)
    assert len(recs) == 4
    seq, etype, rtc_s, mono_ms, a, b = el.decode(recs[0])
    assert (seq, etype, a, b) == (2, events.ALARM_RAISED, 1, -1)
    assert log.read(6, 10) == []


def test_any_bit_flip_is_detected_SR_LOG_2():
    log = el.EventLog(RamStorage(), FakeClock())
    log.append(events.POWER_ON)
    raw = log.read(1, 1)[0]
    for i in range(el.RECORD_SIZE):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        try:
            el.decode(bytes(bad))
            assert False, "flip at byte %d not detected" % i
        except el.CorruptRecord:
            pass


def test_sequence_resumes_after_restart():
    storage = RamStorage()
    log = el.EventLog(storage, FakeClock())
    for _ in range(3):
        log.append(events.POWER_ON)
    log2 = el.EventLog(storage, FakeClock())
    assert log2.last_seq == 3
    assert log2.append(events.POWER_OFF) == 4
    assert [el.decode(r)[0] for r in log2.read(1, 10)] == [1, 2, 3, 4]


def test_power_cut_at_every_byte_loses_at_most_the_record_being_written_SR_LOG_3():
    for cut in range(el.RECORD_SIZE + 1):
        storage = RamStorage()
        log = el.EventLog(storage, FakeClock())
        for i in range(3):
            log.append(events.THERAPY_STARTED, i)
        storage.cut_power_after_bytes(cut)
        try:
            log.append(events.THERAPY_PAUSED, 99)
            written = True
        except PowerCut:
            written = False
        storage.restore_power()
        after = el.EventLog(storage, FakeClock())      # reboot
        recs = [el.decode(r) for r in after.read(1, 100)]
        assert [r[0] for r in recs[:3]] == [1, 2, 3]
        assert len(recs) == (4 if written else 3), (cut, len(recs))
        # the log keeps working after the torn record
        seq = after.append(events.POWER_ON)
        assert seq == len(recs) + 1
        assert [el.decode(r)[0] for r in after.read(1, 100)] == list(range(1, seq + 1))


def test_damaged_record_in_the_middle_is_skipped_and_later_records_kept_SR_LOG_3():
    storage = RamStorage()
    log = el.EventLog(storage, FakeClock())
    for i in range(5):
        log.append(events.THERAPY_STARTED, i)
    storage.files["events.0.bin"][el.RECORD_SIZE + 7] ^= 0x10    # flash damage in record 2
    after = el.EventLog(storage, FakeClock())
    assert after.last_seq == 5
    assert [el.decode(r)[0] for r in after.read(1, 10)] == [1, 3, 4, 5]
    assert after.append(events.POWER_ON) == 6
    assert [el.decode(r)[0] for r in after.read(4, 10)] == [4, 5, 6]


def chain_ok(log):
    """Every kept record decodes, sequence numbers run first_seq..last_seq without a gap
    and each link follows from the previous one (genesis before seq 1)."""
    recs = log.read(1, 1000000)
    seqs = [el.decode(r)[0] for r in recs]
    assert seqs == list(range(log.first_seq, log.last_seq + 1)), (seqs[:5], log.first_seq)
    prev = el.GENESIS_LINK if log.first_seq == 1 else None
    for r in recs:
        if prev is not None:
            assert el.link_of(r) == el.chain_link(prev, r), el.decode(r)
        prev = el.link_of(r)
    return recs


def test_records_are_hash_chained_from_genesis_SR_LOG_2():
    log = el.EventLog(RamStorage(), FakeClock())
    for i in range(6):
        log.append(events.RATE_CHANGED, i, i * 7)
    recs = chain_ok(log)
    assert el.link_of(recs[0]) == el.chain_link(el.GENESIS_LINK, recs[0])
    # an edit that keeps the CRC valid still breaks the chain at that record
    bad = bytearray(recs[3])
    bad[16] ^= 1
    from firmware.crc import crc32
    import struct
    struct.pack_into("<I", bad, 28, crc32(bytes(bad[:28])))
    el.decode(bytes(bad))
    assert el.link_of(bad) != el.chain_link(el.link_of(recs[2]), bad)


def test_ring_recycles_the_oldest_segment_with_a_marker_SR_LOG_3():
    storage = RamStorage()
    log = el.EventLog(storage, FakeClock(), segments=3, segment_records=4)
    for i in range(12):
        log.append(events.THERAPY_STARTED, i)
    assert (log.first_seq, log.last_seq) == (1, 12)
    assert sorted(storage.files) == ["events.0.bin", "events.1.bin", "events.2.bin"]
    log.append(events.THERAPY_PAUSED, 99)     # segment 0 recycled: marker + record
    assert (log.first_seq, log.last_seq) == (5, 14)
    recs = chain_ok(log)
    marker = el.decode(recs[-2])
    assert marker[1] == el.LOG_SEGMENT_RECYCLED == events.LOG_SEGMENT_RECYCLED
    assert (marker[0], marker[4], marker[5]) == (13, 5, 0)
    assert el.decode(recs[-1])[4] == 99
    assert log.read(1, 3) == recs[:3]          # asking for recycled records: the oldest kept
    for i in range(40):
        log.append(events.RATE_CHANGED, i)
        assert len(storage.files) == 3
        assert all(len(v) <= 4 * el.RECORD_SIZE for v in storage.files.values())
        chain_ok(log)
        again = el.EventLog(storage, FakeClock(), segments=3, segment_records=4)
        assert (again.first_seq, again.last_seq) == (log.first_seq, log.last_seq)
        assert again.read(1, 100) == log.read(1, 100)


def test_default_ring_keeps_at_least_16384_records_SR_LOG_3():
    storage = RamStorage()
    log = el.EventLog(storage, FakeClock())
    assert (el.SEGMENTS - 1) * el.SEGMENT_RECORDS >= 16384
    n = el.SEGMENTS * el.SEGMENT_RECORDS + 5
    for i in range(n):
        log.append(events.RATE_CHANGED, i)
    assert log.recycled == 1 and len(storage.files) == el.SEGMENTS
    assert log.count >= 16384
    again = el.EventLog(storage, FakeClock())
    assert (again.first_seq, again.last_seq) == (log.first_seq, log.last_seq)
    assert again.last_seq == n + 1                # one marker
    tail = again.read(again.last_seq - 40, 100)
    assert [el.decode(r)[0] for r in tail] == list(range(again.last_seq - 40, again.last_seq + 1))


def _cut_and_reopen(make, before, cut):
    storage, log = make()
    for i in range(before):
        log.append(events.THERAPY_STARTED, i)
    first0, last0 = log.first_seq, log.last_seq
    storage.cut_power_after_bytes(cut)
    try:
        log.append(events.THERAPY_PAUSED, 99)
    except PowerCut:
        pass
    storage.restore_power()
    after = el.EventLog(storage, FakeClock(), segments=3, segment_records=4)
    recs = chain_ok(after)
    survived = after.last_seq - last0
    assert 0 <= survived <= 2, (cut, after.last_seq)
    assert after.read(last0 - 3, 3) == [r for r in recs if last0 - 3 <= el.decode(r)[0] < last0]
    seq = after.append(events.POWER_ON)     # keeps working, chain intact
    assert seq == after.last_seq
    chain_ok(after)
    return survived


def test_power_cut_at_every_byte_of_a_segment_recycle_SR_LOG_3():
    def make():
        storage = RamStorage()
        return storage, el.EventLog(storage, FakeClock(), segments=3, segment_records=4)
    outcomes = set()
    for cut in range(2 * el.RECORD_SIZE + 1):     # marker + record
        outcomes.add(_cut_and_reopen(make, 12, cut))   # records that survived
    assert outcomes == set([0, 1, 2]), outcomes


def test_power_cut_at_every_byte_of_an_append_in_a_wrapped_ring_SR_LOG_3():
    def make():
        storage = RamStorage()
        return storage, el.EventLog(storage, FakeClock(), segments=3, segment_records=4)
    for before in (13, 14, 15):
        for cut in range(el.RECORD_SIZE + 1):
            assert _cut_and_reopen(make, before, cut) == (1 if cut == el.RECORD_SIZE else 0)
