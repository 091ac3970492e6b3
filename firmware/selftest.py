"""Power-on self test (SR-AL-4): each item tests what it claims, or says it cannot.

Owns the list of POST checks and their pass criteria.  Each check returns
``(name, status, detail)`` with status ``PASS``, ``FAIL`` or ``NOT_TESTABLE``
("not testable on this board": the board has no way to observe it, e.g. no LED
current sense on the reference Pico).  An item is never reported as passed
without a measurement behind it.  Any FAIL is a system error that blocks
delivery (the application raises SELF_TEST_FAILED).  Items: HAL parts that could
not be built, buzzer, LEDs, air detector, both pressure sensors, watchdog,
firmware image hashes (manifest written by ``make firmware``), calibration record.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

FAIL = const(0)
PASS = const(1)
NOT_TESTABLE = const(2)
STATUS_NAMES = ("FAIL", "pass", "not testable on this board")

PRESSURE_MIN_MMHG = const(-50)    # plausible range of a healthy sensor at rest
PRESSURE_MAX_MMHG = const(300)
ADC_STUCK_LOW = const(0)
ADC_STUCK_HIGH = const(4095)
WATCHDOG_TIMEOUT_MS = const(2000)


def _capability(label, result, what):
    """An optional backend self test: True/False, or None when the board cannot observe it."""
    if result is None:
        return (label, NOT_TESTABLE, "no %s feedback on this board" % what)
    return (label, PASS if result else FAIL, what + (" seen" if result else " not seen"))


def _check_pressure(sensor, label):
    raw = sensor.read_raw()
    mmhg = sensor.read_mmhg()
    if raw <= ADC_STUCK_LOW or raw >= ADC_STUCK_HIGH:
        return (label, FAIL, "ADC stuck at %d" % raw)
    if mmhg < PRESSURE_MIN_MMHG or mmhg > PRESSURE_MAX_MMHG:
        return (label, FAIL, "%d mmHg outside %d..%d at rest" %
                (mmhg, PRESSURE_MIN_MMHG, PRESSURE_MAX_MMHG))
    return (label, PASS, "%d mmHg" % mmhg)


def _check_image(board):
    root = getattr(board, "IMAGE_ROOT", None)
    if root is None:
        return ("firmware image", NOT_TESTABLE, "running from source (no image manifest)")
    from firmware.image_check import check_image
    ok, detail = check_image(root)
    return ("firmware image", PASS if ok else FAIL, detail)


def run_post(hal):
    """Run every check; returns a list of (name, status, detail)."""
    results = []
    for part, reason in hal.part_failures:
        results.append(("hardware: " + part, FAIL, reason))
    # alarm outputs: drive them, then ask the backend whether it saw them
    hal.buzzer.tone(880, 50)
    buzzer_seen = hal.buzzer.self_test()
    hal.buzzer.off()
    results.append(_capability("buzzer", buzzer_seen, "sounder current"))
    hal.leds.set(True, True, True)
    leds_seen = hal.leds.self_test()
    hal.leds.set(False, False, False)
    results.append(_capability("leds", leds_seen, "LED current"))
    ok = hal.air.self_test()
    results.append(("air sensor", PASS if ok else FAIL,
                    "follows its test input" if ok else "does not follow its test input"))
    results.append(_check_pressure(hal.pressure_down, "downstream pressure"))
    results.append(_check_pressure(hal.pressure_up, "upstream pressure"))
    hal.watchdog.start(WATCHDOG_TIMEOUT_MS)
    hal.watchdog.feed()
    bite = hal.watchdog.self_test()
    if bite is None:
        results.append(("watchdog", NOT_TESTABLE,
                        "started %d ms; a bite cannot be proven without a reset" %
                        WATCHDOG_TIMEOUT_MS))
    else:
        results.append(("watchdog", PASS if bite else FAIL,
                        "bite proven" if bite else "did not bite"))
    try:
        results.append(_check_image(hal.board))
    except Exception as e:  # noqa: BLE001 -- an unreadable image is a failed item
        results.append(("firmware image", FAIL, "image check failed: %s: %s" %
                        (type(e).__name__, e)))
    results.append(("calibration", NOT_TESTABLE,
                    "no calibration record on this build (board nominal constants)"))
    return results


def failures(results):
    """The failed items of a POST result list."""
    return [r for r in results if r[1] == FAIL]
