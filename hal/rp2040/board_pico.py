"""Board file: Raspberry Pi Pico (RP2040) reference pump.  Every pin and constant.

Pin numbers are GPIO numbers.  Calibration figures here are the nominal values
of the reference build; the per-unit calibration record (later issue) overrides
the pressure offset/gain and the microstep volume.
"""
NAME = "pico"
USTEP_VOLUME_PL = 15625          # 50 uL/rev / (200 steps x 16 usteps); CADD 0.050 mL/stroke
USTEPS_PER_REV = 3200
DELIVERY_USTEPS_PER_REV = 2400   # reference cassette cam: delivers over the first 75 % (PT-3)
ENCODER_PULSES_PER_REV = 1       # hall sensor, one magnet on the cam shaft
CYCLE_MS = 100                   # firmware control cycle; core ticks every 10 ms inside it

# TMC2209 STEP/DIR/EN (EN active low)
PIN_STEP = 2
PIN_DIR = 3
PIN_EN = 4
STEP_PIO_FREQ_HZ = 1000000       # 1 us per PIO cycle

PIN_ENCODER = 5
PIN_AIR_OUT = 6                  # ultrasonic detector: high = air
PIN_AIR_TEST = 7                 # drive high: detector must report air
PIN_DOOR = 8                     # low = door latched (switch to ground, pull-up)
PIN_CASSETTE_0 = 9               # cassette coding, low = bit set
PIN_CASSETTE_1 = 10

PIN_KEY_RUN_STOP = 11            # keys to ground, pull-ups
PIN_KEY_SELECT = 12
PIN_KEY_BOLUS = 13               # PCA button on a cord
PIN_KEY_UP = 14
PIN_KEY_DOWN = 15
PIN_KEY_SILENCE = 16

PIN_BUZZER = 17                  # PWM
PIN_LED_RED = 18
PIN_LED_AMBER = 19
PIN_LED_GREEN = 20
PIN_CHARGER_STAT = 21            # low = charging

PIN_I2C_SDA = 0                  # SSD1306 128x64 on I2C0
PIN_I2C_SCL = 1
I2C_ID = 0
DISPLAY_ADDR = 0x3C

ADC_PRESSURE_DOWN = 0            # GP26
ADC_PRESSURE_UP = 1              # GP27
ADC_VSYS = 3                     # GP29 = VSYS / 3 on the Pico
VSYS_DIVIDER = 3
ADC_VREF_MV = 3300

PRESSURE_ADC_OFFSET = 400        # counts at 0 mmHg (12-bit)
PRESSURE_MMHG_PER_COUNT_NUM = 2  # 0.4 mmHg per count
PRESSURE_MMHG_PER_COUNT_DEN = 5

# Boot and image (firmware/main.py, firmware/selftest.py)
IMAGE_ROOT = "/"                 # where `pumpctl deploy` puts the image and its manifest.json
MAINTENANCE_BOOT = False         # production: no REPL on the port, ever (SR-SVC-4). A
                                 # development image (`make firmware DEV=1`) adds dev_image.py:
                                 # SELECT+SILENCE held at power-on then leaves the motor off
                                 # and the REPL open for `pumpctl deploy`
