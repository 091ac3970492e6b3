"""The Cortex-M0+ build behaves exactly like the host build (PT-1's build, SR-CORE-*).

The armv6m object is run instruction by instruction under unicorn and compared,
tick by tick and in its final state bytes, with the cffi build on a workload that
covers every tick path.  Performance figures are printed by `make bench`, not
asserted here.
"""
import pytest

from tests.bench import armv6m_emu as emu

pytestmark = pytest.mark.skipif(not emu.toolchain_available(),
                                reason="arm-none-eabi-gcc not installed (make toolchain)")


def test_armv6m_build_is_bit_exact_with_host_build():
    elf, obj, su = emu.build()
    counts, mismatches, same_state, core = emu.run_against_host(elf, ticks_per_program=2500,
                                                                 pca_ticks_per_program=6000)
    assert len(counts) > 10000
    assert mismatches == 0
    assert same_state


def test_armv6m_object_has_no_data_and_no_runtime_calls():
    elf, obj, su = emu.build()
    import subprocess
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", obj], capture_output=True,
                               text=True, check=True).stdout.strip()
    assert undefined == ""
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        elf_file = ELFFile(f)
        for name in (".data", ".bss"):
            sec = elf_file.get_section_by_name(name)
            assert sec is None or sec.data_size == 0, name
