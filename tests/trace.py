"""`make trace`: each requirement ID of SPEC.md with the tests that name it.

Test names carry IDs as ``SR_CORE_3`` (several numbers may share one prefix:
``SR_CORE_1_2_3``); PT ids appear in benchmark and test docstrings as ``PT-1``.
Prints covered IDs with their tests and lists the IDs no test names yet.
"""
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(os.path.dirname(REPO), "shared", "SPEC.md")


def spec_ids():
    text = open(SPEC).read() if os.path.exists(SPEC) else ""
    return sorted(set(re.findall(r"\b(SR-[A-Z]+-\d+|PT-\d+)\b", text)),
                  key=lambda s: (s.split("-")[0], s.split("-")[1], int(s.split("-")[-1])))


def test_refs():
    refs = {}
    for root, _, files in os.walk(os.path.join(REPO, "tests")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, REPO)
            text = open(path).read()
            for m in re.finditer(r"def (test_\w+)", text):
                for g in re.finditer(r"SR_([A-Z]+)((?:_\d+)+)", m.group(1)):
                    for num in g.group(2).strip("_").split("_"):
                        refs.setdefault("SR-%s-%s" % (g.group(1), num), []).append(
                            "%s::%s" % (rel, m.group(1)))
            for pt in set(re.findall(r"\bPT-\d+\b", text)):
                refs.setdefault(pt, []).append(rel)
    return refs


def main():
    ids = spec_ids()
    if not ids:
        print("no requirement ids found: SPEC.md expected at %s" % SPEC)
        return 1
    refs = test_refs()
    missing = []
    for rid in ids:
        tests = sorted(set(refs.get(rid, [])))
        if tests:
            print("%-10s %d" % (rid, len(tests)))
            for t in tests:
                print("           %s" % t)
        else:
            missing.append(rid)
    print("\ncovered %d of %d requirement ids" % (len(ids) - len(missing), len(ids)))
    if missing:
        print("not yet named by any test: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
