"""Event log records (SR-LOG-1..3 first slice): CRC-32, sequence, power cut at any byte."""
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
    storage.files["events.bin"][el.RECORD_SIZE + 7] ^= 0x10      # flash damage in record 2
    after = el.EventLog(storage, FakeClock())
    assert after.last_seq == 5 and after.corrupt_slots == 1
    assert [el.decode(r)[0] for r in after.read(1, 10)] == [1, 3, 4, 5]
    assert after.append(events.POWER_ON) == 6
    assert [el.decode(r)[0] for r in after.read(4, 10)] == [4, 5, 6]
