"""Differential walk under MicroPython: the native module against the reference core.

Prints ``N passed, M failed`` (see tests/core_walk.py for the walk).
"""
import safety_core as sc
from tests.core_walk import walk

passed, failed, first = walk(sc.SafetyCore(backend="native"), sc.SafetyCore(backend="reference"))
if first is not None:
    print("first mismatch:", first)
print("%d passed, %d failed" % (passed, failed))
