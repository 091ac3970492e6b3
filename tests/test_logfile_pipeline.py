"""Pipelined log pull (PT-6): several LOG_READs in flight give the same file and the same
findings as one request at a time (SR-LOG-4), with gaps, recycled records, resumes and a
lost reply.

The pump side is the real firmware EventLog on RAM storage; the link answers each
LOG_READ when it is sent (as the pump answers the frames it has read) and hands the
replies back by request id, like ``PumpLink.log_window_send`` / ``log_window_wait``.
"""
from firmware import events
from host_tools.pumpctl import logfile
from host_tools.pumpctl.link import PumpError
from tests.test_logfile import FakeLink, pump_log


class DroppingLink(FakeLink):
    """One request at a time; records in ``drop`` are skipped as the pump skips damaged
    slots."""

    def __init__(self, log, drop=()):
        super().__init__(log)
        self.drop = set(drop)

    def log_window(self, from_seq, max_count):
        first, last, recs = super().log_window(from_seq, max_count)
        from firmware import eventlog as el
        return first, last, [r for r in recs if el.decode(r)[0] not in self.drop]


class PipeLink(DroppingLink):
    """Pipelined requests; ``lose`` = request numbers whose first reply is lost."""

    def __init__(self, log, drop=(), lose=()):
        super().__init__(log, drop)
        self.replies = {}
        self.next_id = 0
        self.lose = set(lose)
        self.sent = 0
        self.max_inflight = 0
        self.resent = 0

    def log_window_send(self, from_seq, max_count):
        self.next_id += 1
        self.sent += 1
        if self.sent not in self.lose:
            self.replies[self.next_id] = self.log_window(from_seq, max_count)
        self.max_inflight = max(self.max_inflight, len(self.replies))
        return self.next_id

    def log_window_wait(self, rid, from_seq, max_count):
        if rid not in self.replies:             # lost: resent with the same id
            self.resent += 1
            self.replies[rid] = self.log_window(from_seq, max_count)
        return self.replies.pop(rid)

    def forget(self, rid):
        self.replies.pop(rid, None)


def _pull_both(tmp_path, log, name, drop=(), lose=(), depth=logfile.PIPELINE_DEPTH):
    seq_path = str(tmp_path / (name + "-seq.plog"))
    pipe_path = str(tmp_path / (name + "-pipe.plog"))
    a = logfile.pull(DroppingLink(log, drop), seq_path)
    link = PipeLink(log, drop, lose)
    b = logfile.pull(link, pipe_path, depth=depth)
    fields = ("pulled", "from_seq", "to_seq", "resumed", "gaps", "recycled", "chain_breaks")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert open(seq_path, "rb").read() == open(pipe_path, "rb").read()
    return b, link, pipe_path


def test_pipelined_pull_matches_one_request_at_a_time_PT_6(tmp_path):
    res, link, path = _pull_both(tmp_path, pump_log(1000), "plain")
    assert res.pulled == 1000 and logfile.verify(path).ok
    assert link.max_inflight == logfile.PIPELINE_DEPTH and not link.replies
    res, link, path = _pull_both(tmp_path, pump_log(1000), "deep", depth=16)
    assert res.pulled == 1000 and link.max_inflight == 16


def test_pipelined_pull_with_gaps_and_a_lost_reply_PT_6(tmp_path):
    drop = set(range(95, 100)) | set(range(301, 331)) | {999}
    res, link, _ = _pull_both(tmp_path, pump_log(1000), "gaps", drop=drop, lose={3, 17})
    assert res.gaps == [(95, 99), (301, 330), (999, 999)]
    assert link.resent == 2 and not link.replies


def test_pipelined_pull_resumes_and_names_recycled_records_PT_6(tmp_path):
    log = pump_log(10, segments=3, segment_records=64)
    seq_path = str(tmp_path / "r-seq.plog")
    pipe_path = str(tmp_path / "r-pipe.plog")
    logfile.pull(DroppingLink(log), seq_path)
    logfile.pull(PipeLink(log), pipe_path)
    for i in range(200):                            # the ring wraps past record 10
        log.append(events.RATE_CHANGED, i)
    assert log.first_seq > 11
    a = logfile.pull(DroppingLink(log), seq_path)
    b = logfile.pull(PipeLink(log), pipe_path)
    assert a.recycled == b.recycled == [(11, log.first_seq - 1)]
    assert (a.pulled, a.to_seq) == (b.pulled, b.to_seq)
    assert open(seq_path, "rb").read() == open(pipe_path, "rb").read()
    assert logfile.verify(pipe_path).ok


def test_an_interrupted_pipelined_pull_resumes_PT_6(tmp_path):
    log = pump_log(500)
    path = str(tmp_path / "i.plog")

    class Stop(Exception):
        pass

    def stop_after_three(done, total):
        if done >= 90:
            raise Stop()
    link = PipeLink(log)
    try:
        logfile.pull(link, path, progress=stop_after_three)
    except Stop:
        pass
    assert not link.replies                          # the requests in flight were given up
    assert logfile.read_header(path)["head_seq"] == 90
    res = logfile.pull(PipeLink(log), path)
    assert res.resumed and res.pulled == 410 and logfile.verify(path).ok


def test_a_timeout_in_flight_gives_up_the_pipeline_PT_6(tmp_path):
    class Dead(PipeLink):
        def log_window_wait(self, rid, from_seq, max_count):
            if from_seq > 200:
                raise PumpError("TIMEOUT", "no reply")
            return super().log_window_wait(rid, from_seq, max_count)
    link = Dead(pump_log(500))
    path = str(tmp_path / "t.plog")
    try:
        logfile.pull(link, path)
        raise AssertionError("no timeout")
    except PumpError:
        pass
    assert not link.replies and logfile.read_header(path)["head_seq"] == 210
