"""Event-log append time at 10 and at 16,000 records (SR-LOG-3: constant append cost).

Runs under MicroPython (``MICROPYPATH=.frozen:<repo> micropython tests/bench/log_append.py``)
and CPython.  Appends into the default ring (9 x 2,048 records) on RAM storage
and, when a directory is given, on real files (``PosixStorage``), and prints the
mean time of 200 appends around record 10 and around record 16,000.  Prints only:
no assertion on time (the machine it runs on varies).
"""
import sys
import time

from firmware import eventlog as el
from firmware import events
from hal.ram_storage import RamStorage


class _Clock:
    def ticks_ms(self):
        return 0

    def rtc_s(self):
        return 1795000000


def _now_us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.perf_counter() * 1000000)


def _diff_us(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(b, a)
    return b - a


def _mean_append_us(log, n):
    t0 = _now_us()
    for i in range(n):
        log.append(events.RATE_CHANGED, i)
    return _diff_us(t0, _now_us()) / n


def bench(storage, label):
    log = el.EventLog(storage, _Clock())
    for i in range(10):
        log.append(events.RATE_CHANGED, i)
    at_10 = _mean_append_us(log, 200)
    while log.last_seq < 16000:
        log.append(events.RATE_CHANGED, 0)
    at_16000 = _mean_append_us(log, 200)
    print("log append (%s, %s): %.1f us at 10 records, %.1f us at 16,000 records" % (
        sys.implementation.name, label, at_10, at_16000))


def main(argv):
    bench(RamStorage(), "RAM storage")
    if len(argv) > 1:
        from hal.sim import PosixStorage
        bench(PosixStorage(argv[1]), "files in " + argv[1])


main(sys.argv)
