"""The simulated world around one pump: mechanism, line, air, battery, sensors, time.

Owns virtual time and all physics state.  The sim HAL backend (``hal/sim``)
only reads and writes this object: the stepper hands over the microsteps for
the next period (``command_steps``), the scenario or virtual pump calls
``advance(dt_ms)``, the sensors read noisy ADC codes from it.  Scenario hooks
(``clamp``, ``inject_bubble``, ``open_door``) change the world, never the
firmware.  Cost per ``advance`` is constant (closed-form physics).
"""
from sim.air import AirPath
from sim.battery import Battery
from sim.fluid_line import FluidLine
from sim.mechanism import Mechanism
from sim.noise import Noise
from sim.presets import PRESETS

# pressure transducer: 12-bit ADC, 400 counts at 0 mmHg, 0.4 mmHg per count
# (the board file of the sim holds the same calibration the firmware uses)
ADC_OFFSET_COUNTS = 400
ADC_MMHG_PER_COUNT = 0.4
ADC_MAX = 4095
NOISE_MMHG = 2.0          # 1 sigma, force-sensor + ADC noise
UPSTREAM_MMHG = 0.0       # reservoir bag at pump height
MAX_USTEP_RATE_HZ = 20000.0   # PIO step generator ceiling (500 mL/h needs ~8.9 kHz)


class World:
    """Physics and virtual time for one simulated pump."""

    def __init__(self, preset="picc", seed=1, stroke_error=0.0, noise_mmhg=NOISE_MMHG,
                 battery_soc=1.0, encoder_pulses_per_rev=1):
        if preset not in PRESETS:
            raise ValueError("unknown line preset %r (choose %s)" %
                             (preset, ", ".join(sorted(PRESETS))))
        p = PRESETS[preset]
        self.preset = preset
        self.mechanism = Mechanism(stroke_error, encoder_pulses_per_rev)
        self.line = FluidLine(p["resistance_mmhg_s_per_ul"], p["compliance_ul_per_mmhg"],
                              p["venous_mmhg"])
        self.air = AirPath()
        self.battery = Battery(soc=battery_soc)
        self.noise = Noise(seed)
        self.noise_mmhg = noise_mmhg
        self.t_ms = 0
        self.door_closed = True
        self.pending_steps = 0
        self.motor_enabled = False
        self.steps_total = 0
        self.pumped_ul = 0.0
        self.delivered_to_patient_ul = 0.0
        self.flow_ml_per_h = 0.0
        self.air_passed_nl = 0        # not yet read by the air sensor
        self.air_stuck = False        # fault injection: detector output stuck

    # ---- hooks used by the sim HAL ------------------------------------------
    def command_steps(self, steps, period_ms):
        """The stepper queues ``steps`` more microsteps (emitted by the next advance)."""
        if self.motor_enabled:
            self.pending_steps += steps

    def take_air_nl(self):
        nl = self.air_passed_nl
        self.air_passed_nl = 0
        return nl

    # ---- scenario hooks ----------------------------------------------------------
    def clamp(self, closed):
        """Close (True) or open (False) a clamp downstream of the pump."""
        self.line.clamped = bool(closed)

    def inject_bubble(self, volume_ul, distance_ul=0.0):
        self.air.inject(volume_ul, distance_ul)

    def clear_air(self):
        """The nurse primes the air out of the line (bubbles removed)."""
        self.air.bubbles = []
        self.air.present = False

    def open_door(self, is_open=True):
        self.door_closed = not is_open

    # ---- time ----------------------------------------------------------------------
    def advance(self, dt_ms):
        """Apply the commanded steps over ``dt_ms`` and move time on."""
        steps = self.pending_steps
        self.pending_steps = 0
        dt_s = dt_ms / 1000.0
        pumped = self.mechanism.move(steps) if steps else 0.0
        self.steps_total += steps
        if self.air.bubbles:
            self.air_passed_nl += int(self.air.move(pumped) * 1000.0)
        to_patient = self.line.step(pumped, dt_s)
        self.pumped_ul += pumped
        self.delivered_to_patient_ul += to_patient
        self.flow_ml_per_h = to_patient * 3.6 / dt_s
        # motor duty: fraction of the 20 kHz maximum microstep rate in use
        duty = steps / (dt_s * MAX_USTEP_RATE_HZ)
        self.battery.draw(dt_s, duty if duty < 1.0 else 1.0)
        self.t_ms += dt_ms

    # ---- readouts -------------------------------------------------------------------
    @property
    def downstream_mmhg(self):
        return self.line.pressure_mmhg

    def _adc(self, mmhg):
        code = int(ADC_OFFSET_COUNTS + (mmhg + self.noise.gauss(self.noise_mmhg))
                   / ADC_MMHG_PER_COUNT + 0.5)
        if code < 0:
            return 0
        return ADC_MAX if code > ADC_MAX else code

    def pressure_adc_down(self):
        return self._adc(self.line.pressure_mmhg)

    def pressure_adc_up(self):
        return self._adc(UPSTREAM_MMHG)

    @property
    def air_present(self):
        return self.air_stuck or self.air.present

    @property
    def encoder_count(self):
        return self.mechanism.encoder_count()

    @property
    def battery_mv(self):
        return self.battery.voltage_mv()

    def trace_row(self):
        """(t_ms, pumped_ul, patient_ul, downstream_mmhg, flow_ml_per_h) for plots."""
        return (self.t_ms, self.pumped_ul, self.delivered_to_patient_ul,
                self.line.pressure_mmhg, self.flow_ml_per_h)
