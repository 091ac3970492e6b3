"""Runner for the portable test modules under MicroPython (and CPython).

Imports every ``tests/mpy/test_*.py`` module, calls each ``test_*`` function,
prints failures with their exception and ends with ``N passed, M failed``.
Exit status is non-zero when anything failed or nothing ran.
Usage: ``MICROPYPATH=.frozen:<repo> micropython tests/mpy/run.py [module ...]``.
"""
import gc
import os
import sys


def _modules(selected):
    here = "tests/mpy"
    names = selected or sorted(n[:-3] for n in os.listdir(here)
                               if n.startswith("test_") and n.endswith(".py"))
    return names


def main(argv):
    passed = 0
    failed = 0
    for mod_name in _modules(argv):
        gc.collect()                  # each module starts on a collected heap
        try:
            mod = __import__("tests.mpy." + mod_name, None, None, ["*"])
        except Exception as e:
            failed += 1
            print("FAIL import %s: %s: %s" % (mod_name, type(e).__name__, e))
            sys.print_exception(e) if hasattr(sys, "print_exception") else None
            continue
        for name in sorted(dir(mod)):
            if not name.startswith("test_"):
                continue
            fn = getattr(mod, name)
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %s: %s" % (mod_name, name, type(e).__name__, e))
                if hasattr(sys, "print_exception"):
                    sys.print_exception(e)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
