"""Pulled event logs: resumable pull, chain head, verify at every record position (SR-LOG-2,
SR-LOG-4).

The pump side is the real firmware EventLog on RAM storage; the link is an in-process
stand-in answering LOG_READ the way firmware/service.py does (first kept, last, records).
"""
import struct

import pytest
from click.testing import CliRunner

from firmware import eventlog as el
from firmware import events
from firmware.crc import crc32
from hal.ram_storage import RamStorage
from host_tools.pumpctl import logfile
from host_tools.pumpctl.cli import main

N = 300


class Clock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        self.t += 250
        return self.t

    def rtc_s(self):
        return 1795000000 + self.t // 1000


class FakeLink:
    """LOG_READ as the pump answers it: at most 30 records a frame."""

    def __init__(self, log):
        self.log = log
        self.requests = 0

    def log_window(self, from_seq, max_count):
        self.requests += 1
        return self.log.first_seq, self.log.last_seq, self.log.read(from_seq, min(max_count, 30))


def pump_log(n=N, **ring):
    log = el.EventLog(RamStorage(), Clock(), **ring)
    for i in range(n):
        log.append(events.RATE_CHANGED if i % 3 else events.ALARM_RAISED, i, -i)
    return log


@pytest.fixture(scope="module")
def raws():
    return pump_log().read(1, 100000)


def problems(path):
    return [(p.kind, p.seq, p.position) for p in logfile.verify(str(path)).problems]


def test_pull_writes_verified_records_and_read_records_decodes_them_SR_LOG_4(tmp_path):
    log = pump_log()
    path = str(tmp_path / "p.plog")
    seen = []
    res = logfile.pull(FakeLink(log), path, progress=lambda d, t: seen.append((d, t)))
    assert (res.pulled, res.from_seq, res.to_seq, res.gaps, res.chain_breaks) == \
        (N, 1, N, [], [])
    assert seen[-1] == (N, N)
    recs = logfile.read_records(path)
    assert [r["seq"] for r in recs] == list(range(1, N + 1))
    assert recs[0]["type_name"] == "ALARM_RAISED" and recs[4]["a"] == 4 and recs[4]["b"] == -4
    assert recs[-1]["link"] == struct.unpack("<I", el.link_of(log.read(N, 1)[0]))[0]
    assert set(recs[0]) == {"seq", "type", "type_name", "rtc_s", "mono_ms", "a", "b", "link"}
    v = logfile.verify(path)
    assert v.ok and v.anchored and (v.first_seq, v.last_seq) == (1, N)
    h = logfile.read_header(path)
    assert h["head_seq"] == N and h["head_link"] == el.link_of(log.read(N, 1)[0])


def test_pull_resumes_after_the_last_record_and_an_interrupted_pull_loses_nothing(tmp_path):
    log = pump_log(100)
    path = str(tmp_path / "p.plog")

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done >= 60:
            raise Stop()
    with pytest.raises(Stop):
        logfile.pull(FakeLink(log), path, progress=stop_after_two)
    assert [r["seq"] for r in logfile.read_records(path)] == list(range(1, 61))
    res = logfile.pull(FakeLink(log), path)
    assert res.resumed and (res.from_seq, res.to_seq, res.pulled) == (61, 100, 40)
    for i in range(50):
        log.append(events.THERAPY_PAUSED, i)
    res = logfile.pull(FakeLink(log), path)
    assert (res.from_seq, res.to_seq) == (101, 150)
    res = logfile.pull(FakeLink(log), path)
    assert res.pulled == 0
    assert [r["seq"] for r in logfile.read_records(path)] == list(range(1, 151))
    assert logfile.verify(path).ok


def test_a_rewritten_history_is_refused_on_resume_SR_LOG_2(tmp_path):
    path = str(tmp_path / "p.plog")
    logfile.pull(FakeLink(pump_log(100)), path)
    other = el.EventLog(RamStorage(), Clock())      # same length, chain recomputed
    for i in range(120):
        other.append(events.RATE_CHANGED, i + 1000)
    before = open(path, "rb").read()
    with pytest.raises(logfile.HistoryRewritten, match="record 100 differs"):
        logfile.pull(FakeLink(other), path)
    assert open(path, "rb").read() == before
    # records cut from the end of the file: the head in the header still holds
    data = bytearray(before)
    del data[-3 * el.RECORD_SIZE:]
    open(path, "wb").write(bytes(data))
    assert problems(path) == [("missing", 98, 98)]
    with pytest.raises(logfile.HistoryRewritten):
        logfile.pull(FakeLink(other), path)


def test_records_recycled_on_the_pump_are_named_not_missing_SR_LOG_3(tmp_path):
    log = pump_log(10, segments=3, segment_records=8)
    path = str(tmp_path / "p.plog")
    logfile.pull(FakeLink(log), path)
    for i in range(40):                             # the ring wraps past record 10
        log.append(events.RATE_CHANGED, i)
    assert log.first_seq > 11
    res = logfile.pull(FakeLink(log), path)
    assert res.recycled == [(11, log.first_seq - 1)] and not res.gaps
    v = logfile.verify(path)
    assert v.ok, v.problems
    assert v.recycled == [(11, log.first_seq - 1)]
    # a fresh pull of a wrapped ring starts at the first kept record
    fresh = str(tmp_path / "fresh.plog")
    res = logfile.pull(FakeLink(log), fresh)
    assert res.from_seq == log.first_seq and logfile.verify(fresh).ok


def _edited(raw, recompute_crc=True):
    bad = bytearray(raw)
    bad[16] ^= 0x40                                 # argument a
    if recompute_crc:
        struct.pack_into("<I", bad, 28, crc32(bytes(bad[:28])))
    return bytes(bad)


def test_verify_names_an_edited_record_at_every_position_SR_LOG_2(tmp_path, raws):
    path = str(tmp_path / "e.plog")
    for i in range(N):
        for recompute in (True, False):
            logs = list(raws)
            logs[i] = _edited(raws[i], recompute)
            logfile.write_file(path, logs)
            assert problems(path) == [("edited", i + 1, i + 1)], (i, recompute)


def test_verify_names_a_deleted_record_at_every_position_SR_LOG_2(tmp_path, raws):
    path = str(tmp_path / "d.plog")
    logfile.write_file(path, raws)
    header = open(path, "rb").read()[:logfile.HEADER_SIZE]     # the head the host saw
    for i in range(N):
        logs = raws[:i] + raws[i + 1:]
        with open(path, "wb") as f:
            f.write(header + b"".join(logs))
        assert problems(path) == [("missing", i + 1, i + 1)], i


def test_verify_names_neighbours_swapped_at_every_position_SR_LOG_2(tmp_path, raws):
    path = str(tmp_path / "s.plog")
    for i in range(N - 1):
        logs = list(raws)
        logs[i], logs[i + 1] = logs[i + 1], logs[i]
        logfile.write_file(path, logs)
        assert problems(path) == [("reordered", i + 1, i + 2)], i
        msg = logfile.verify(path).problems[0].message
        assert "seq %d at position %d" % (i + 1, i + 2) in msg
        assert "seq %d at position %d" % (i + 2, i + 1) in msg


def test_logs_verify_cli_exits_non_zero_and_names_the_record(tmp_path, raws):
    path = str(tmp_path / "c.plog")
    logfile.write_file(path, raws)
    res = CliRunner().invoke(main, ["logs", "verify", path])
    assert res.exit_code == 0 and "OK, %d records seq 1..%d" % (N, N) in res.output
    logs = list(raws)
    logs[41] = _edited(raws[41])
    del logs[200]
    logfile.write_file(path, logs)
    res = CliRunner().invoke(main, ["logs", "verify", path])
    assert res.exit_code == 1
    assert "EDITED: record seq 42 at position 42" in res.output
    res = CliRunner().invoke(main, ["logs", "verify", str(tmp_path / "nope.plog")])
    assert res.exit_code != 0 and "cannot read" in res.output
    open(path, "wb").write(b"not a log")
    res = CliRunner().invoke(main, ["logs", "verify", path])
    assert res.exit_code != 0 and "not a pulled pump log" in res.output
