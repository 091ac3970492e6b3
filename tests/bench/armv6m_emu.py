"""Run the armv6m (Cortex-M0+) build of the safety core under unicorn.

Owns the emulator harness shared by the PT-1 benchmark and the armv6m
conformance test: builds a flat ELF of the core with arm-none-eabi-gcc, loads
it with pyelftools, calls the C API with arguments in r0-r3 exactly as a
Cortex-M0+ would, counts executed instructions per call, and measures the
deepest stack use by painting the stack.  All structs of the API are arrays
of 32-bit words, so their bytes are identical to the host (cffi) build's.
"""
import os
import shutil
import struct
import subprocess

from elftools.elf.elffile import ELFFile
from unicorn import Uc, UC_ARCH_ARM, UC_MODE_THUMB, UC_MODE_MCLASS, UC_HOOK_CODE
from unicorn import arm_const as A

from safety_core.constants import PROGRAM_FIELDS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build", "armv6m")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m0plus", "-mthumb", "-Os",
          "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
          "-fstack-usage"]

FLASH = 0x10000000
RAM = 0x20000000
RAM_SIZE = 0x10000
STACK_TOP = RAM + RAM_SIZE
STACK_PAINT = 0x1000
RETURN = FLASH + 0xF000          # lr points here; emulation stops on arrival
PAINT = 0xA5
ADDR_STATE = RAM + 0x1000
ADDR_IN = RAM + 0x2000
ADDR_OUT = RAM + 0x2100
ADDR_PROG = RAM + 0x2200
ADDR_WHY = RAM + 0x2300


def toolchain_available():
    return shutil.which("arm-none-eabi-gcc") is not None


def build():
    """Compile and link the core; returns (elf path, object path, .su path)."""
    os.makedirs(BUILD, exist_ok=True)
    obj = os.path.join(BUILD, "safety_core.o")
    elf = os.path.join(BUILD, "safety_core.elf")
    subprocess.run(["arm-none-eabi-gcc"] + CFLAGS +
                   ["-I", os.path.join(REPO, "safety_core", "include"), "-c",
                    os.path.join(REPO, "safety_core", "src", "safety_core.c"), "-o", obj],
                   check=True, cwd=BUILD)
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-nostdlib",
                    "-Wl,-T," + os.path.join(REPO, "tests", "bench", "armv6m.ld"),
                    "-Wl,-e,0", "-o", elf, obj], check=True, cwd=BUILD)
    return elf, obj, os.path.join(BUILD, "safety_core.su")


def text_size(obj):
    with open(obj, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".text")
        return sec.data_size


class EmulatedCore:
    """The armv6m core in an emulated Cortex-M0+, one sc_state_t in its RAM."""

    def __init__(self, elf_path, state_size):
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        try:
            self.uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M0)
        except Exception:
            pass
        self.uc.mem_map(FLASH, 0x10000)
        self.uc.mem_map(RAM, RAM_SIZE)
        self.symbols = {}
        with open(elf_path, "rb") as f:
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                    self.uc.mem_write(seg["p_paddr"], seg.data())
            for sym in elf.get_section_by_name(".symtab").iter_symbols():
                if sym["st_info"]["type"] == "STT_FUNC":
                    self.symbols[sym.name] = sym["st_value"] & ~1
        self.state_size = state_size
        self.count = 0
        self.uc.hook_add(UC_HOOK_CODE, self._on_insn)
        self.max_stack = 0

    def _on_insn(self, uc, address, size, user):
        self.count += 1

    def call(self, name, *args):
        """Call a core function; returns (r0, instructions executed)."""
        uc = self.uc
        uc.mem_write(STACK_TOP - STACK_PAINT, bytes([PAINT]) * STACK_PAINT)
        for reg, val in zip((A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2,
                             A.UC_ARM_REG_R3), args):
            uc.reg_write(reg, val & 0xFFFFFFFF)
        uc.reg_write(A.UC_ARM_REG_SP, STACK_TOP)
        uc.reg_write(A.UC_ARM_REG_LR, RETURN | 1)
        self.count = 0
        uc.emu_start(self.symbols[name] | 1, RETURN, count=100000)
        painted = bytes(uc.mem_read(STACK_TOP - STACK_PAINT, STACK_PAINT))
        used = STACK_PAINT - next((i for i, b in enumerate(painted) if b != PAINT), STACK_PAINT)
        self.max_stack = max(self.max_stack, used)
        return uc.reg_read(A.UC_ARM_REG_R0), self.count

    # ---- the C API --------------------------------------------------------------
    def init(self, ustep_volume_pl):
        return self.call("sc_init", ADDR_STATE, ustep_volume_pl, ADDR_WHY)[0]

    def load_program(self, words):
        words = tuple(words) + (0,) * (PROGRAM_WORDS - len(words))
        self.uc.mem_write(ADDR_PROG, struct.pack("<%dI" % PROGRAM_WORDS, *words))
        return self.call("sc_load_program", ADDR_STATE, ADDR_PROG, ADDR_WHY)[0]

    def set_rate(self, rate_ul_per_h, until_ul):
        return self.call("sc_set_rate", ADDR_STATE, rate_ul_per_h, until_ul, ADDR_WHY)[0]

    def bolus(self, kind, amount_ul):
        return self.call("sc_bolus", ADDR_STATE, kind, amount_ul)[0]

    def start(self):
        return self.call("sc_start", ADDR_STATE)[0]

    def pause(self):
        return self.call("sc_pause", ADDR_STATE)[1]

    def tick(self, mmhg, air_nl, air_present, heartbeat):
        """sc_tick; returns (steps, faults, phase, instructions)."""
        self.uc.mem_write(ADDR_IN, struct.pack("<iIII", mmhg, air_nl, air_present, heartbeat))
        self.uc.mem_write(ADDR_IN + 16, struct.pack("<I", 0))
        steps, n = self.call("sc_tick", ADDR_STATE, ADDR_IN, ADDR_OUT)
        _, faults, phase, _ = struct.unpack("<4I", bytes(self.uc.mem_read(ADDR_OUT, 16)))
        return steps, faults, phase, n

    def sample(self, mmhg, encoder_count):
        """sc_sample; returns (faults, instructions)."""
        self.uc.mem_write(ADDR_IN, struct.pack("<iIIII", mmhg, 0, 0, 0, encoder_count))
        return self.call("sc_sample", ADDR_STATE, ADDR_IN)

    def take_backoff(self):
        return self.call("sc_take_backoff", ADDR_STATE)[0]

    def backoff_done(self, usteps):
        return self.call("sc_backoff_done", ADDR_STATE, usteps)[1]

    def set_motion_check(self, usteps_per_pulse):
        return self.call("sc_set_motion_check", ADDR_STATE, usteps_per_pulse, ADDR_WHY)[0]

    def acknowledge(self, mmhg, air_present, heartbeat, encoder_count=0):
        self.uc.mem_write(ADDR_IN, struct.pack("<iIIII", mmhg, 0, air_present, heartbeat,
                                               encoder_count))
        return self.call("sc_acknowledge", ADDR_STATE, ADDR_IN)

    def state_bytes(self):
        return bytes(self.uc.mem_read(ADDR_STATE, self.state_size))


PROGRAM_WORDS = 14     # sc_program_t: 7 therapy words + 7 dose-limit words (safety_core.h)


def workload(seed=1, ticks_per_program=7000, pca_ticks_per_program=40000):
    """Deterministic programs and sensor traces covering every tick path.

    Yields ('program', words) then ('tick', (mmhg, air_nl, present, hb)) items,
    with occasional ('ack', ...) and ('start',) to leave and re-enter faults, and a
    ('sample', mmhg) every 10 ticks (the board's 100 ms: pressure rules, motion check;
    the driver adds the encoder count and takes the back-off); then the dose-limit
    paths (pca_workload)."""
    for item in continuous_workload(seed, ticks_per_program):
        yield item
    for item in pca_workload(seed, pca_ticks_per_program):
        yield item


def pca_workload(seed=1, ticks_per_program=40000):
    """PCA and profiles: boluses at up to 500 mL/h on a basal, caps that cut them,
    rate segments ending on a tick, window rolls while a bolus runs (the rolls come
    every 30,000 ticks, the first at 27,000: the default 3 x 40,000 ticks cover several
    of them in each state)."""
    x = seed
    # (rate, vtbi, kvo, hard min, hard max, occlusion, bubble, max 1 h, max 4 h, bolus,
    #  bolus rate, lockout s, max boluses/h, flags)
    programs = (
        (1000, 60000, 0, 0, 0, 300, 100, 6000, 12000, 1000, 500000, 60, 6, 0),
        (2000, 8000, 1000, 0, 0, 300, 100, 3000, 0, 500, 100000, 60, 0, 0),
        (100000, 30000, 0, 0, 0, 300, 100, 0, 0, 0, 500000, 0, 0, 0),
    )
    hb = 0
    for n, words in enumerate(programs):
        yield ("program", words)
        for t in range(ticks_per_program):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            if t % 50 == 0:
                hb += 1
            if t % 700 == 3:
                yield ("bolus", (0 if n < 2 else 1, 2000))
            if n == 2 and t % 1500 == 7:      # a profile: the next segment
                yield ("set_rate", ((t // 1500) % 5 * 100000 + 100000,
                                    0 if t > ticks_per_program * 3 // 4 else
                                    (t // 1500 + 1) * 1000))
            yield ("tick", (20 + (x % 40), 0, 0, hb))
            if t % 10 == 9:
                yield ("sample", 20 + (x % 40))


def continuous_workload(seed=1, ticks_per_program=7000):
    x = seed
    rates = (100, 1000, 10000, 100000, 500000)
    for i, rate in enumerate(rates):
        vtbi = max(100, rate * ticks_per_program // 2 // 360000)   # VTBI mid-run -> KVO
        kvo = min(rate, 1000) if i % 2 == 0 else 0
        yield ("program", (rate, vtbi, kvo, 0, 0, 300, 100))
        hb = 0
        for t in range(ticks_per_program):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            if t % 50 == 0:
                hb += 1
            mmhg = 20 + (x % 5)
            if rate == 10000 and t >= 2500:      # a line that closes: the trend sees it
                mmhg += (t - 2500) * 3 // 16     # ~0.75 mmHg per uL at 10 mL/h
            air_nl, present = 0, 0
            phase_t = t % 2000
            if 1000 <= phase_t < 1070:
                mmhg = 400                       # occlusion over the threshold
            if phase_t == 1500:
                air_nl, present = 150000, 1      # bubble
            if 1700 <= phase_t < 1820:
                hb_out = hb                       # heartbeat stops for 1.2 s
                yield ("tick", (mmhg, air_nl, present, hb_out - 1000))
                continue
            yield ("tick", (mmhg, air_nl, present, hb))
            if t % 10 == 9:
                yield ("sample", mmhg)
            if phase_t in (1100, 1600, 1900):
                yield ("ack", (20, 0, hb))
                yield ("start",)


def run_against_host(elf, ticks_per_program=7000, pca_ticks_per_program=40000):
    """Drive the emulated core and the cffi host build with the same workload.

    Returns (instructions per tick, tick mismatches, final states identical, core); the
    instructions per sample are in core.sample_counts."""
    from safety_core._sc_cffi import ffi, lib
    core = EmulatedCore(elf, ffi.sizeof("sc_state_t"))
    host = ffi.new("sc_state_t *")
    h_in = ffi.new("sc_inputs_t *")
    h_out = ffi.new("sc_output_t *")
    h_prog = ffi.new("sc_program_t *")
    assert core.init(15625) == 0 and lib.sc_init(host, 15625, ffi.NULL) == 0
    assert core.set_motion_check(3200) == 0 and lib.sc_set_motion_check(host, 3200, ffi.NULL) == 0
    core.sample_counts = []
    reversed_steps = 0
    counts = []
    mismatches = 0
    for item in workload(ticks_per_program=ticks_per_program,
                         pca_ticks_per_program=pca_ticks_per_program):
        kind = item[0]
        if kind == "program":
            core.pause()
            lib.sc_pause(host)
            words = item[1]
            for name, v in zip(("rate_ul_per_h", "vtbi_ul", "kvo_ul_per_h",
                                "hard_min_rate_ul_per_h", "hard_max_rate_ul_per_h",
                                "occlusion_limit_mmhg", "bubble_limit_ul"), words):
                setattr(h_prog, name, v)
            words = tuple(words) + (0,) * (PROGRAM_WORDS - len(words))
            for name, v in zip(PROGRAM_FIELDS[7:], words[7:]):
                setattr(h_prog, name, v)
            assert core.load_program(words) == lib.sc_load_program(host, h_prog, ffi.NULL)
            core.start()
            lib.sc_start(host)
        elif kind == "tick":
            mmhg, air_nl, present, hb = item[1]
            hb &= 0xFFFFFFFF
            steps, faults, phase, n = core.tick(mmhg, air_nl, present, hb)
            h_in.downstream_mmhg, h_in.air_nl, h_in.air_present = mmhg, air_nl, present
            h_in.heartbeat = hb
            h_steps = lib.sc_tick(host, h_in, h_out)
            if (steps, faults, phase) != (h_steps, h_out.faults, h_out.phase):
                mismatches += 1
            counts.append(n)
        elif kind == "sample":
            # a healthy cam encoder: one pulse per 3200 steps turned, either way
            enc = ((host.motor_steps + reversed_steps) // 3200) & 0xFFFFFFFF
            faults, n = core.sample(item[1], enc)
            h_in.downstream_mmhg, h_in.encoder_count = item[1], enc
            if faults != lib.sc_sample(host, h_in):
                mismatches += 1
            core.sample_counts.append(n)
            back = core.take_backoff()
            if back != lib.sc_take_backoff(host):
                mismatches += 1
            core.backoff_done(back)          # the driver turns the motor back by it
            lib.sc_backoff_done(host, back)
            reversed_steps += back
        elif kind == "ack":
            mmhg, present, hb = item[1]
            enc = ((host.motor_steps + reversed_steps) // 3200) & 0xFFFFFFFF
            core.acknowledge(mmhg, present, hb, enc)
            h_in.downstream_mmhg, h_in.air_present, h_in.heartbeat = mmhg, present, hb
            h_in.encoder_count = enc
            lib.sc_acknowledge(host, h_in)
        elif kind == "start":
            core.start()
            lib.sc_start(host)
        elif kind == "bolus":
            assert core.bolus(*item[1]) == lib.sc_bolus(host, *item[1])
        elif kind == "set_rate":
            assert core.set_rate(*item[1]) == lib.sc_set_rate(host, item[1][0], item[1][1],
                                                               ffi.NULL)
    same_state = core.state_bytes() == bytes(ffi.buffer(host))
    return counts, mismatches, same_state, core
