"""Board files hold every pin and constant a backend needs, and no pin is used twice."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = ["hal/rp2040/board_pico.py", "hal/esp32/board_devkit.py", "hal/sim/board_sim.py"]
COMMON = ["NAME", "USTEP_VOLUME_PL", "USTEPS_PER_REV", "ENCODER_PULSES_PER_REV", "CYCLE_MS",
          "PRESSURE_ADC_OFFSET", "PRESSURE_MMHG_PER_COUNT_NUM", "PRESSURE_MMHG_PER_COUNT_DEN"]
DEVICE_PINS = ["PIN_STEP", "PIN_DIR", "PIN_EN", "PIN_ENCODER", "PIN_AIR_OUT", "PIN_AIR_TEST",
               "PIN_DOOR", "PIN_CASSETTE_0", "PIN_KEY_RUN_STOP", "PIN_KEY_SELECT",
               "PIN_KEY_BOLUS", "PIN_KEY_UP", "PIN_KEY_DOWN", "PIN_KEY_SILENCE", "PIN_BUZZER",
               "PIN_LED_RED", "PIN_LED_AMBER", "PIN_LED_GREEN", "PIN_CHARGER_STAT",
               "PIN_I2C_SDA", "PIN_I2C_SCL"]


def load(rel):
    ns = {}
    exec(compile(open(os.path.join(REPO, rel)).read(), rel, "exec"), ns)
    return ns


@pytest.mark.parametrize("rel", BOARDS)
def test_board_defines_the_common_constants(rel):
    ns = load(rel)
    missing = [k for k in COMMON if k not in ns]
    assert not missing, missing
    assert ns["USTEP_VOLUME_PL"] * ns["USTEPS_PER_REV"] == 50 * 1000 * 1000   # 50 uL/rev
    assert 10 <= ns["CYCLE_MS"] <= 1000 and ns["CYCLE_MS"] % 10 == 0      # whole core ticks


@pytest.mark.parametrize("rel", BOARDS[:2])
def test_device_board_pins_are_complete_and_unique(rel):
    ns = load(rel)
    missing = [k for k in DEVICE_PINS if k not in ns]
    assert not missing, missing
    gpio = {k: v for k, v in ns.items() if k.startswith("PIN_")}
    used = {}
    for name, number in gpio.items():
        assert number not in used, "%s: GPIO %d used by %s and %s" % (rel, number, used[number],
                                                                      name)
        used[number] = name
