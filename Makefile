# Infusion pump firmware: build, test, simulate, benchmark.
#   make sim    -- the main job: simulated therapy, report and plot (out/)
#   make test   -- every test (C builds and checks, sanitizers, pytest incl. MicroPython)
#   make bench  -- PT-1 (instructions/tick on armv6m under unicorn) and PT-2 (sim speed)
#   make soak   -- 100,000 hostile service frames at an infusing pump; >= 10,000
#                  therapy-hours of the whole-pump state machine
#   make trace  -- each requirement ID with the tests that name it
#   make natmod ARCH=armv6m MPY_DIR=<micropython tree>  -- the device native module
# Each target bootstraps what it needs (.venv, pip install -e .[dev], cffi build,
# and as root the Debian cross compilers and cppcheck).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORE_SRC := safety_core/src/safety_core.c
CORE_HDR := safety_core/include/safety_core.h
CFFI_STAMP := build/cffi.stamp
OUT := build/c
WARN := -std=c99 -pedantic -Wall -Wextra -Werror -Wconversion -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wcast-qual -Wundef
FREESTANDING := -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns -fstack-usage
ARM_CC := arm-none-eabi-gcc
ARM_FLAGS := -mcpu=cortex-m0plus -mthumb -Os $(FREESTANDING)
RV_CC := riscv64-unknown-elf-gcc
RV_FLAGS := -march=rv32imc -mabi=ilp32 -Os $(FREESTANDING)
DEBIAN_PKGS := gcc-arm-none-eabi gcc-riscv64-unknown-elf cppcheck postgresql chromium chromium-driver

.PHONY: all setup toolchain cffi c-checks c-host c-cross c-cppcheck c-sanitize typecheck test sim bench soak trace natmod firmware clean

all: test

# ---- set-up ------------------------------------------------------------------
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(STAMP) toolchain

toolchain:
	@missing=""; for t in $(ARM_CC) $(RV_CC) cppcheck chromium chromedriver; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PKGS) >/dev/null; \
	  else \
	    echo "missing tools:$$missing -- run as root or: sudo apt-get install $(DEBIAN_PKGS)"; exit 1; \
	  fi; \
	fi

$(CFFI_STAMP): $(STAMP) $(CORE_SRC) $(CORE_HDR) safety_core/_build_cffi.py
	$(VPY) safety_core/_build_cffi.py
	@mkdir -p build && touch $@

cffi: $(CFFI_STAMP)

# ---- C checks ----------------------------------------------------------------------
c-host:
	@mkdir -p $(OUT)
	gcc $(WARN) -O2 -I safety_core/include -c $(CORE_SRC) -o $(OUT)/host.o
	clang --version >/dev/null 2>&1 && clang $(WARN) -O2 -I safety_core/include -c $(CORE_SRC) -o $(OUT)/host-clang.o || true

c-cross: toolchain
	@mkdir -p $(OUT)
	$(ARM_CC) $(WARN) $(ARM_FLAGS) -I safety_core/include -c $(CORE_SRC) -o $(OUT)/armv6m.o
	$(RV_CC) $(WARN) $(RV_FLAGS) -I safety_core/include -c $(CORE_SRC) -o $(OUT)/rv32imc.o
	@for o in armv6m rv32imc; do \
	  undef=$$(nm -u $(OUT)/$$o.o); \
	  if [ -n "$$undef" ]; then echo "$$o: core needs runtime symbols (natmod/unicorn cannot link): $$undef"; exit 1; fi; \
	done
	@arm-none-eabi-size $(OUT)/armv6m.o | awk 'NR==2 { if ($$2 != 0) { print "armv6m: initialised .data present (" $$2 " B): not natmod-ready"; exit 1 } \
	  print "armv6m: .text " $$1 " B, .data " $$2 " B, .bss " $$3 " B" }'
	@echo "rv32imc: $$(riscv64-unknown-elf-size $(OUT)/rv32imc.o | awk 'NR==2 {print ".text " $$1 " B, .data " $$2 " B"}')"

c-cppcheck: toolchain
	cppcheck --quiet --std=c99 --enable=warning,style,performance,portability \
	  --error-exitcode=1 --inline-suppr -I safety_core/include $(CORE_SRC) tests/c/test_core.c

c-sanitize:
	@mkdir -p $(OUT)
	gcc -std=c99 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
	  -I safety_core/include $(CORE_SRC) tests/c/test_core.c -o $(OUT)/test_core_asan
	$(OUT)/test_core_asan

c-checks: c-host c-cross c-cppcheck c-sanitize

# device code against the MicroPython port stubs (rp2, esp32)
typecheck: $(STAMP)
	$(VPY) tests/typecheck_devices.py

# ---- the two commands ----------------------------------------------------------------
test: $(STAMP) c-checks typecheck $(CFFI_STAMP)
	rm -f build/stateful_therapy_hours.txt
	$(VPY) -m pytest -q -p no:cacheprovider tests
	@cat build/stateful_therapy_hours.txt 2>/dev/null || true

sim: $(STAMP) $(CFFI_STAMP)
	$(VPY) -m host_tools.sim_report --scenario $(or $(SCENARIO),picc_occlusion) --runtime both

# ---- figures and traceability ----------------------------------------------------------
bench: $(STAMP) toolchain $(CFFI_STAMP)
	$(VPY) tests/bench/pt1_unicorn.py
	$(VPY) tests/bench/pt2_sim_speed.py
	$(VPY) tests/bench/pt3_trumpet.py
	$(VPY) tests/bench/pt4_occlusion.py
	$(VPY) tests/bench/pt4_occlusion.py --runtime micropython
	$(VPY) tests/bench/pt4_false_alarms.py
	$(VPY) tests/bench/pt5_air.py
	$(VPY) tests/bench/pt8_heap.py
	$(VPY) tests/bench/pt7_library.py
	$(VPY) tests/bench/pt6_log_pull.py
	$(VPY) tests/bench/archive_bench.py

# 100,000 hostile frames at an infusing pump (a short version runs in make test)
soak: $(STAMP) $(CFFI_STAMP)
	$(VPY) -m tests.soak_hostile_link --frames 100000
	$(VPY) -m tests.soak_therapy --hours 10000

trace: $(STAMP)
	$(VPY) tests/trace.py

NATMOD_ARCH := $(or $(ARCH),armv6m)
natmod: $(STAMP)
	@test -n "$(MPY_DIR)" || { echo "natmod: set MPY_DIR=<micropython source tree> (1.29, mpy 6.3)"; exit 1; }
	rm -rf safety_core/natmod/sc_native.mpy safety_core/natmod/build safety_core/natmod/build-$(NATMOD_ARCH)
	$(MAKE) -C safety_core/natmod ARCH=$(NATMOD_ARCH) MPY_DIR=$(abspath $(MPY_DIR)) PYTHON=$(abspath $(VPY))
	@mkdir -p build/natmod/$(NATMOD_ARCH)
	mv safety_core/natmod/sc_native.mpy build/natmod/$(NATMOD_ARCH)/sc_native.mpy
	@echo "built build/natmod/$(NATMOD_ARCH)/sc_native.mpy"

# device image: mpy-cross precompiled modules + manifest.json (sha256 of every file)
BOARD ?= pico
firmware: $(STAMP)
	$(VPY) host_tools/firmware_image.py --board $(BOARD) $(if $(DEV),--dev)

clean:
	rm -rf build out safety_core/_sc_cffi*.so
