"""Board file of the simulated pump: the same constants a real board file holds."""
NAME = "sim"
USTEP_VOLUME_PL = 15625          # 50 uL/rev / 3200 usteps/rev (calibration record)
USTEPS_PER_REV = 3200
DELIVERY_USTEPS_PER_REV = 2400   # reference cassette cam: delivers over the first 75 % (PT-3)
ENCODER_PULSES_PER_REV = 1
CYCLE_MS = 1000                  # firmware cycle in fast simulation (<= 1 s heartbeat)
PRESSURE_ADC_OFFSET = 400        # counts at 0 mmHg (sim/world.py uses the same)
PRESSURE_MMHG_PER_COUNT_NUM = 2  # 0.4 mmHg per count = 2/5
PRESSURE_MMHG_PER_COUNT_DEN = 5
