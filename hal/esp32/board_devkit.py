"""Board file: ESP32-S3-DevKitC-1 reference pump (second platform).  Every pin and constant.

Analog inputs on ADC1 (GPIO1-10; ADC2 is unusable with Wi-Fi), 11 dB attenuation.
GPIO19/20 are the native USB pins, 0/3/45/46 strapping pins, 26-37 flash/PSRAM:
none of them is used.  The service port is UART1 (SPEC: UART on ESP32 boards).
"""
NAME = "esp32s3-devkitc-1"
USTEP_VOLUME_PL = 15625          # 50 uL/rev / 3200 usteps/rev
USTEPS_PER_REV = 3200
DELIVERY_USTEPS_PER_REV = 2400   # reference cassette cam: delivers over the first 75 % (PT-3)
ENCODER_PULSES_PER_REV = 1
CYCLE_MS = 100

PIN_ADC_PRESSURE_DOWN = 1
PIN_ADC_PRESSURE_UP = 2
PIN_ADC_BATTERY = 3
BATTERY_DIVIDER = 2              # 100k/100k from the cell
PIN_STEP = 4
PIN_DIR = 5
PIN_EN = 6
PIN_ENCODER = 7
PIN_UART_TX = 8
PIN_UART_RX = 9
UART_ID = 1
UART_BAUD = 115200
PIN_KEY_RUN_STOP = 10
PIN_KEY_SELECT = 11
PIN_KEY_BOLUS = 12
PIN_KEY_UP = 13
PIN_KEY_DOWN = 14
PIN_KEY_SILENCE = 21
PIN_AIR_OUT = 15
PIN_AIR_TEST = 16
PIN_DOOR = 17
PIN_CASSETTE_0 = 18
PIN_BUZZER = 38
PIN_LED_RED = 39
PIN_LED_AMBER = 40
PIN_LED_GREEN = 41
PIN_CHARGER_STAT = 42
PIN_I2C_SDA = 47
PIN_I2C_SCL = 48
DISPLAY_ADDR = 0x3C

PRESSURE_ADC_OFFSET = 400        # counts at 0 mmHg (12-bit)
PRESSURE_MMHG_PER_COUNT_NUM = 2  # 0.4 mmHg per count
PRESSURE_MMHG_PER_COUNT_DEN = 5

# Boot and image (firmware/main.py, firmware/selftest.py)
IMAGE_ROOT = "/"                 # where `pumpctl deploy` puts the image and its manifest.json
MAINTENANCE_BOOT = False         # production: no REPL on the port, ever (SR-SVC-4). A
                                 # development image (`make firmware DEV=1`) adds dev_image.py:
                                 # SELECT+SILENCE held at power-on then leaves the motor off
                                 # and the REPL open for `pumpctl deploy`
