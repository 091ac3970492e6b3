"""Device entry point: build the board's HAL, boot the pump, run the cycle loop.

Owns only the wiring and the pacing of the real device: the safety core is
ticked every 10 ms by a hardware timer IRQ (``TimerDoseDriver``), the
application cycle runs every ``CYCLE_MS`` and feeds it samples and heartbeat.  The production image
runs this as main.py; the service server owns the USB CDC port (SR-SVC-4: the
production build disables the REPL on it).  The backend is chosen from
``sys.platform`` (``hal.rp2040`` or ``hal.esp32``) so nothing here names a pin.
"""
import time


def _make_hal():
    import sys
    if sys.platform == "rp2":
        from hal.rp2040 import make_hal
    elif sys.platform == "esp32":
        from hal.esp32 import make_hal
    else:
        raise RuntimeError("no device HAL for platform %r; use sim/virtual_pump.py" % sys.platform)
    return make_hal()


def _timer_start(period_ms, callback):
    """Periodic hard-IRQ timer for the core tick (soft IRQ where the port has no hard timers)."""
    import machine
    try:
        return machine.Timer(-1, mode=machine.Timer.PERIODIC, period=period_ms,
                             callback=callback, hard=True)
    except (TypeError, ValueError):
        return machine.Timer(0, mode=machine.Timer.PERIODIC, period=period_ms,
                             callback=callback)


def main():
    import machine
    import safety_core as sc
    from firmware.app import PumpApp
    from firmware.dose_driver import TimerDoseDriver
    hal = _make_hal()
    core = sc.SafetyCore(hal.board.USTEP_VOLUME_PL)
    driver = TimerDoseDriver(core, hal.stepper, _timer_start, machine.disable_irq,
                             machine.enable_irq)
    app = PumpApp(hal, core=core, driver=driver)
    app.boot()
    period_ms = hal.board.CYCLE_MS
    next_ms = time.ticks_add(time.ticks_ms(), period_ms)
    while True:
        app.cycle()
        wait = time.ticks_diff(next_ms, time.ticks_ms())
        if wait > 0:
            time.sleep_ms(wait)
        next_ms = time.ticks_add(next_ms, period_ms)


if __name__ == "__main__":
    main()
