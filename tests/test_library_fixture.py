"""The compiled library fixture used by the portable druglib tests is what the compiler
writes today (SR-LIB-2).

``tests/fixtures/library_small.bin`` is ``tests/fixtures/library_small.json`` compiled
with the test fleet key ``tests/fixtures/library_test.key`` (NOT a production key) and a
fixed creation time.  If the format changes on purpose, regenerate it with
``.venv/bin/python -m tests.test_library_fixture`` and review the diff.
"""
import os
import sys

from host_tools.library import check as ck
from host_tools.library import compiler as cp

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
SOURCE = os.path.join(FIXTURES, "library_small.json")
BINARY = os.path.join(FIXTURES, "library_small.bin")
KEY = os.path.join(FIXTURES, "library_test.key")
CREATED_S = 1767225600          # 2026-01-01 00:00:00 UTC


def build_fixture():
    model, problems = ck.check_file(SOURCE)
    assert not ck.errors(problems), [str(p) for p in problems]
    key, _ = cp.load_key(KEY)
    return cp.compile_model(model, key, created_s=CREATED_S)


def test_fixture_is_what_the_compiler_writes_today_SR_LIB_2():
    with open(BINARY, "rb") as f:
        committed = f.read()
    assert committed == build_fixture(), (
        "tests/fixtures/library_small.bin is stale: run python -m tests.test_library_fixture")


if __name__ == "__main__":
    data = build_fixture()
    with open(BINARY, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (BINARY, len(data)))
    sys.exit(0)
