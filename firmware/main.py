"""Device entry point: take the REPL off the port, build the HAL, boot, run the cycle loop.

Owns only the wiring and the pacing of the real device, and the promise that
boot never ends in a REPL (SR-SVC-4):

1. First of all Ctrl-C is disabled on the service port (``micropython.kbd_intr(-1)``),
   so no byte from the host can interrupt the firmware; ``main()`` never returns.
2. The board's HAL is built (``hal.rp2040`` / ``hal.esp32``, chosen from
   ``sys.platform`` so nothing here names a pin).  Backends build each part
   through ``hal.build_part``: a dead display becomes a named self-test failure.
   If ``make_hal`` raises anyway, an inert HAL stands in (``hal/inert.py``).
3. Core, dose driver (10 ms hardware-timer IRQ, ``TimerDoseDriver``) and the
   application are built and the power-on self test runs.  Any exception there
   becomes a system error: HIGH alarm, delivery blocked, logged (in RAM if the
   flash log is the problem), service port answering.
4. The cycle loop: an exception in a cycle cuts the motor, raises SYSTEM ERROR and
   the loop goes on serving the port; only a restart clears it.

Maintenance: only a development image (``make firmware DEV=1`` adds ``dev_image.py``
with ``MAINTENANCE_BOOT = True``; board files say False) lets SELECT and SILENCE
held at power-on leave the motor disabled and return to the REPL so ``pumpctl
deploy`` (mpremote) can reach the raw REPL.  Production images never open it and
take new images through BOOTSEL (SR-SVC-4).
"""
import time


def _take_repl_off_port():
    try:
        import micropython
        micropython.kbd_intr(-1)
    except (ImportError, AttributeError):
        pass                      # CPython (tests): no REPL to take off


def _platform_backend():
    """The backend module of this platform (board, make_hal, make_service_port)."""
    import sys
    if sys.platform == "rp2":
        import hal.rp2040 as backend
    elif sys.platform == "esp32":
        import hal.esp32 as backend  # type: ignore[no-redef]
    else:
        raise RuntimeError("no device HAL for platform %r; use sim/virtual_pump.py" % sys.platform)
    return backend


def _timer_start(period_ms, callback):
    """Periodic hard-IRQ timer for the core tick (soft IRQ where the port has no hard timers).

    Returns the Timer: the caller must keep it (rp2 sweeps an unreferenced Timer)."""
    import machine
    try:
        return machine.Timer(-1, mode=machine.Timer.PERIODIC, period=period_ms,
                             callback=callback, hard=True)
    except (TypeError, ValueError):
        return machine.Timer(0, mode=machine.Timer.PERIODIC, period=period_ms,
                             callback=callback)


def _reason(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def development_image():
    """True only in an image built with ``make firmware DEV=1`` (it holds dev_image.py)."""
    try:
        import dev_image  # type: ignore[import-not-found]
    except ImportError:
        return False
    return getattr(dev_image, "MAINTENANCE_BOOT", False) is True


def maintenance_requested(board, pin_class):
    """SELECT and SILENCE held at power-on on a board that allows a maintenance boot."""
    if not (getattr(board, "MAINTENANCE_BOOT", False) or development_image()):
        return False
    select = pin_class(board.PIN_KEY_SELECT, pin_class.IN, pin_class.PULL_UP)
    silence = pin_class(board.PIN_KEY_SILENCE, pin_class.IN, pin_class.PULL_UP)
    return select.value() == 0 and silence.value() == 0


class _FallbackBoard:
    """The constants a stand-in pump needs, without the image check (it may be what failed)."""
    IMAGE_ROOT = None

    def __init__(self, board):
        self.NAME = getattr(board, "NAME", "?")
        self.USTEP_VOLUME_PL = board.USTEP_VOLUME_PL
        self.CYCLE_MS = board.CYCLE_MS
        self.USTEPS_PER_REV = getattr(board, "USTEPS_PER_REV", 3200)
        self.SERIAL = getattr(board, "SERIAL", None)


def start_pump(board, make_hal, make_service_port, timer_start, irq_lock, irq_unlock):
    """Build and boot the pump; never raises: a failure gives a pump in system error.

    Three attempts: the real HAL; then stand-ins for everything but the service port
    (RAM log, no timer, no motor, no image check), so the technician can still read the
    self-test result and the log; then stand-ins for everything.  ``make_service_port``
    is tried alone when ``make_hal`` fails."""
    import hal
    from hal import inert
    port = None
    try:
        h = make_hal()
        port = h.service_port
    except Exception as e:
        port = hal.build_part([], "service_port", make_service_port, inert.InertServicePort)
        h = inert.failed_hal(_FallbackBoard(board), _reason(e), service_port=port)
    try:
        return _boot(h, board, timer_start, irq_lock, irq_unlock)
    except Exception as e:
        reason = "boot: " + _reason(e)
    try:
        return _boot(inert.failed_hal(_FallbackBoard(board), reason, service_port=port),
                     board, None, None, None)
    except Exception as e:
        reason = reason + "; then " + _reason(e)
    return _boot(inert.failed_hal(_FallbackBoard(board), reason), board, None, None, None)


def _boot(h, board, timer_start, irq_lock, irq_unlock):
    """Core, driver (timer IRQ when ``timer_start`` is given), app, power-on self test."""
    import safety_core as sc
    from firmware.app import PumpApp
    from firmware.dose_driver import BatchDoseDriver, TimerDoseDriver
    core = sc.SafetyCore(board.USTEP_VOLUME_PL)
    if timer_start is None:
        return _booted(PumpApp(h, core=core, driver=BatchDoseDriver(core, h.stepper,
                                                                    board.CYCLE_MS)))
    driver = TimerDoseDriver(core, h.stepper, timer_start, irq_lock, irq_unlock,
                             board, h.encoder.pulses_per_rev)
    try:
        return _booted(PumpApp(h, core=core, driver=driver))
    except Exception:
        try:
            driver.stop()
        except Exception:
            pass
        raise


def _booted(app):
    app.boot()
    return app


def run_cycles(app, period_ms, clock_ms, sleep_ms, cycles=-1):
    """The cycle loop (forever when ``cycles`` < 0); exceptions become a system error."""
    next_ms = clock_ms() + period_ms
    while cycles != 0:
        cycles -= 1
        try:
            app.cycle()
        except Exception as e:
            _cycle_failed(app, e)
        wait = next_ms - clock_ms()
        if wait > 0:
            sleep_ms(wait)
        next_ms += period_ms


def _cycle_failed(app, exc):
    """Each step on its own: a failing log must not stop the port or the watchdog feed."""
    try:
        app.system_error(exc)
    except Exception:
        pass
    try:
        app.service.poll()              # the technician can still read what happened
    except Exception:
        pass
    try:
        app.hal.watchdog.feed()         # the motor is cut: keep the port alive, no reset loop
    except Exception:
        pass


def main():
    _take_repl_off_port()
    import machine
    backend = _platform_backend()
    board = backend.board
    if maintenance_requested(board, machine.Pin):
        machine.Pin(board.PIN_EN, machine.Pin.OUT, value=1)     # driver off (active low)
        print("maintenance boot: motor disabled, REPL open for deploy")
        return
    app = start_pump(board, backend.make_hal, backend.make_service_port, _timer_start,
                     machine.disable_irq, machine.enable_irq)
    clock = app.hal.clock
    while True:                       # run_cycles returns only if told to; never to a REPL
        try:
            run_cycles(app, board.CYCLE_MS, clock.ticks_ms, clock.sleep_ms)
        except Exception as e:        # the loop itself failed (the clock): cut, go on
            _cycle_failed(app, e)
            time.sleep_ms(board.CYCLE_MS)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
