"""PT-7: drug library of 30 care areas with 3,000 entries in all (the largest shipped size).

Generates a realistic library source as CSV (30 care areas x 100 drug entries, ~400
formulary drugs shared between care areas, every dose unit, PCA and per-kg entries),
then prints:
  - compile time: read + schema + every check + compile + sign, in process (target <= 1 s),
    and the whole `pumpctl library compile` command including interpreter start-up;
  - binary size (target ~170 KB or less, so the load over 115,200 baud stays <= 15 s) and
    the link-bound load time size * 10 / 115200 s (8N1: 10 bits per byte);
  - the measured load (target <= 15 s): `pumpctl library load` against `pumpctl sim`
    (MicroPython runtime, real time, 100 ms application cycle) with the link throttled
    to 115,200 baud (11,520 B/s each way), after `pumpctl key provision` (SELECT pressed
    through the virtual pump's press file): login, chunks, commit (the pump verifies the
    slot from its files and switches), as pumpctl reports it, and the whole command
    including interpreter start-up;
  - pump-side verification time of the whole binary under MicroPython (unix port; streamed
    CRC-32 + HMAC-SHA256 in 512-byte chunks), the heap it allocates doing so, and the mean
    time of one look-up by binary search (seeking, not loading);
  - peak heap on the pump side during a load, in-process under MicroPython
    (tests/mpy_scripts/library_load_probe.py: gc.mem_alloc at the end of each load cycle
    with the collector held off during it), and the commit cycle's time.
Usage: .venv/bin/python tests/bench/pt7_library.py
"""
import os
import random
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_DOWN, Decimal

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from firmware import druglib as dl  # noqa: E402
from host_tools.library import check as ck  # noqa: E402
from host_tools.library import compiler as cp  # noqa: E402
from host_tools.library import source as sm  # noqa: E402
from host_tools.mpy_runtime import micropython_env, micropython_executable  # noqa: E402

CARE_AREAS = 30
ENTRIES = 3000
DRUGS = 400
TARGET_COMPILE_S = 1.0
TARGET_SIZE_B = 170000
TARGET_LOAD_S = 15.0
BAUD = 115200
BENCH_KEY = bytes(range(32))

SYLLABLES = ("ca", "fen", "mor", "pine", "zo", "lin", "tra", "mycin", "cef", "ta", "dol",
             "rox", "ni", "pro", "ven", "ox", "ate", "min", "dro", "lo", "phine", "ci")
UNIT_MIX = (("mL/h", 40), ("mg/h", 25), ("mcg/h", 10), ("mcg/kg/min", 8), ("mg/kg/h", 7),
            ("units/h", 5), ("mmol/h", 5))
CONC_FOR = {"mg/h": "mg", "mcg/h": "mcg", "mcg/kg/min": "mcg", "mg/kg/h": "mg",
            "units/h": "units", "mmol/h": "mmol"}


def _q(value, places):
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def _drug_pool(rnd):
    names = set()
    pool = []
    units = [u for u, w in UNIT_MIX for _ in range(w)]
    while len(pool) < DRUGS:
        name = "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 4))).capitalize()
        name = name[:20]
        if name in names:
            continue
        names.add(name)
        unit = rnd.choice(units)
        concs = []
        strengths = set()
        for _ in range(rnd.randint(1, 3)):
            if unit == "mL/h":
                concs.append(None if rnd.random() < 0.5 else
                             (Decimal(rnd.choice((1, 2, 5, 10, 20, 40))), "mg", Decimal(1)))
            else:
                amount = Decimal(rnd.choice((1, 2, 5, 10, 25, 50, 100, 200, 500, 1000)))
                volume = Decimal(rnd.choice((1, 1, 1, 50, 100, 250)))
                if amount / volume in strengths:      # same strength written twice
                    continue
                strengths.add(amount / volume)
                concs.append((amount, CONC_FOR[unit], volume))
        pool.append((1000 + len(pool), name, unit, list(dict.fromkeys(concs))))
    return pool


def _entry(rnd, drug_id, name, unit, conc):
    places = [u for u in dl.DOSE_UNITS if u and u[0] == unit][0][1]
    e = sm.empty_entry()
    e.update(drug_id=drug_id, drug_name=name, dose_unit=unit)
    rate_max = Decimal(rnd.choice((50, 100, 200, 300, 400)))
    if conc is not None:
        e.update(conc_amount=conc[0], conc_unit=conc[1], conc_volume_ml=conc[2])
    if unit == "mL/h":
        hard_max = rate_max
    else:
        per_ml = conc[0] / conc[2]
        dose_per_h = rate_max * per_ml
        if unit.endswith("/kg/min") or unit.endswith("/kg/h"):
            e.update(weight_min_kg=Decimal(rnd.choice((1, 3, 10, 30))),
                     weight_max_kg=Decimal(rnd.choice((100, 150, 200))))
            dose_per_h = dose_per_h / e["weight_max_kg"]
        if unit.endswith("/min"):
            dose_per_h = dose_per_h / 60
        hard_max = _q(dose_per_h, places)
        if hard_max == 0:
            hard_max = Decimal(1).scaleb(-places)
    e["hard_max"] = hard_max
    e["soft_max"] = _q(hard_max * Decimal("0.8"), places)
    e["hard_min"] = _q(hard_max * Decimal("0.01"), places)
    e["soft_min"] = _q(hard_max * Decimal("0.05"), places)
    if unit == "mL/h":
        e["hard_min"] = max(e["hard_min"], Decimal("0.1"))
        e["soft_min"] = max(e["soft_min"], Decimal("0.1"))
        e["default"] = _q(e["soft_max"] / 2, 1)
    else:
        e["default"] = _q(e["soft_max"] / 2, places)
    e["vtbi_max_ml"] = Decimal(rnd.choice((50, 100, 250, 500, 1000, 3000)))
    if rnd.random() < 0.3:
        e["occlusion_mmhg"] = rnd.choice((207, 310, 517))
    if unit in ("mg/h", "mcg/h") and rnd.random() < 0.15:
        bolus = _q(hard_max / 5, places) or Decimal("0.1")
        e.update(pca_max_bolus=bolus, pca_min_lockout_minutes=rnd.choice((5, 6, 10, 15)),
                 pca_max_boluses_per_h=rnd.choice((4, 6)), pca_max_dose_1h=bolus * 5,
                 pca_max_dose_4h=bolus * 15)
    return e


def generate_model(seed=7, care_areas=CARE_AREAS, entries=ENTRIES):
    """A model with ``care_areas`` care areas and ``entries`` drug entries in all."""
    rnd = random.Random(seed)
    pool = _drug_pool(rnd)
    per_area = entries // care_areas
    model = {"library": {"library_id": 7, "version": 1, "name": "PT-7 generated",
                         "model": cp.DEFAULT_MODEL}, "care_areas": []}
    for a in range(care_areas):
        area = {"name": "Care area %02d" % (a + 1), "basic_allowed": a % 3 != 0, "entries": []}
        if area["basic_allowed"]:
            b = sm.empty_entry()
            b.update(drug_id=dl.BASIC_DRUG_ID, drug_name=dl.BASIC_NAME, dose_unit="mL/h",
                     hard_min=Decimal("0.1"), hard_max=Decimal(500), soft_max=Decimal(250),
                     vtbi_max_ml=Decimal(3000))
            area["entries"].append(b)
        want = per_area + (1 if a < entries % care_areas else 0)
        n = 0
        for drug_id, name, unit, concs in rnd.sample(pool, len(pool)):
            for conc in concs:
                if n == want:
                    break
                area["entries"].append(_entry(rnd, drug_id, name, unit, conc))
                n += 1
            if n == want:
                break
        model["care_areas"].append(area)
    return model


MPY_SCRIPT = r"""
import gc, sys, time, binascii
from firmware import druglib as dl
path, key_hex, model = sys.argv[1], sys.argv[2], sys.argv[3]
key = binascii.unhexlify(key_hex)
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
t0 = time.ticks_us()
with open(path, "rb") as f:
    h = dl.verify(f, key, model)
t1 = time.ticks_us()
a1 = gc.mem_alloc()
gc.enable()
gc.collect()
with open(path, "rb") as f:
    lib = dl.Library(f)
    keys = []
    for i in range(0, lib.entry_count, 7):
        e = lib.entry(i)
        keys.append((e.care_area, e.drug_id, e.conc_unit, e.conc_amount, e.conc_volume_ul, i))
    t2 = time.ticks_us()
    for ca, drug, cu, amount, vol, i in keys:
        if lib.find(ca, drug, cu, amount, vol).index != i:
            raise SystemExit("lookup mismatch at %d" % i)
    t3 = time.ticks_us()
print("verify_us", time.ticks_diff(t1, t0))
print("verify_alloc_b", a1 - a0)
print("lookups", len(keys))
print("lookup_us", time.ticks_diff(t3, t2))
"""


def device_figures(path):
    exe = micropython_executable()
    if not exe:
        return None
    proc = subprocess.run([exe, "-c", MPY_SCRIPT, path, BENCH_KEY.hex(), cp.DEFAULT_MODEL],
                          cwd=REPO, env=micropython_env(), capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("micropython failed: %s %s" % (proc.stdout, proc.stderr))
    return {k: int(v) for k, v in (line.split() for line in proc.stdout.split("\n") if line)}


def _pumpctl():
    return [os.path.join(os.path.dirname(sys.executable), "pumpctl")]


def throttled_load(bin_path, fleet_key_path, tmp):
    """Load ``bin_path`` into `pumpctl sim --baud 115200` with pumpctl, as a technician
    would.  Returns (pumpctl's own load seconds, command seconds, status line) or raises."""
    import re
    state = os.path.join(tmp, "pump")
    tech = os.path.join(tmp, "tech.key")
    with open(tech, "wb") as f:
        f.write(bytes(range(64, 96)))
    os.chmod(tech, 0o600)
    sim = subprocess.Popen(_pumpctl() + ["sim", "--runtime", "micropython", "--speed", "1",
                                         "--baud", str(BAUD), "--state-dir", state],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline().strip()
        if not line.startswith("PTY "):
            raise RuntimeError("pumpctl sim: %r %s" % (line, sim.stderr.read()))
        port = line.split()[1]
        prov = subprocess.Popen(_pumpctl() + ["key", "provision", "--port", port, "--key",
                                              tech, "--fleet-key", fleet_key_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        prov.stdout.readline()                      # the prompt is on the pump now
        with open(os.path.join(state, "press"), "w") as f:
            f.write("select")
        out, err = prov.communicate(timeout=60)
        if prov.returncode:
            raise RuntimeError("key provision: %s %s" % (out, err))
        t0 = time.perf_counter()
        load = subprocess.run(_pumpctl() + ["library", "load", "--port", port, "--key", tech,
                                            bin_path], capture_output=True, text=True,
                              timeout=120)
        cmd_s = time.perf_counter() - t0
        if load.returncode:
            raise RuntimeError("library load: %s %s" % (load.stdout, load.stderr))
        m = re.search(r"sent in ([0-9.]+) s", load.stdout)
        status = subprocess.run(_pumpctl() + ["status", "--port", port], capture_output=True,
                                text=True, timeout=60, env=dict(os.environ, COLUMNS="200"))
        lib_line = [ln for ln in status.stdout.splitlines() if "drug library" in ln]
        return float(m.group(1)), cmd_s, (" ".join(lib_line[0].strip("│ ").split("│")[-1:])
                                          .strip() if lib_line else "?")
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()


def load_heap_figures(bin_path, tmp):
    """library_load_probe.py under MicroPython: pump-side heap and commit time of a load."""
    import json
    exe = micropython_executable()
    if not exe:
        return None
    work = os.path.join(tmp, "probe")
    os.makedirs(work, exist_ok=True)
    proc = subprocess.run([exe, os.path.join("tests", "mpy_scripts", "library_load_probe.py"),
                           bin_path, BENCH_KEY.hex(), work], cwd=REPO, env=micropython_env(),
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("library_load_probe failed: %s %s" % (proc.stdout, proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    model = generate_model()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "pt7.csv")
        with open(src, "w") as f:
            f.write(sm.to_csv(model))
        key_path = os.path.join(tmp, "fleet.key")
        with open(key_path, "wb") as f:
            f.write(BENCH_KEY)
        os.chmod(key_path, 0o600)
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            m, problems = ck.check_file(src, {"library_id": 7, "version": 1})
            t1 = time.perf_counter()
            data = cp.compile_model(m, BENCH_KEY, created_s=1767225600)
            t2 = time.perf_counter()
            if best is None or t2 - t0 < best[0]:
                best = (t2 - t0, t1 - t0, t2 - t1)
        errs = ck.errors(problems)
        if errs:
            print("generated library has errors:", *errs[:5], sep="\n  ")
            return 1
        out = os.path.join(tmp, "pt7.bin")
        t0 = time.perf_counter()
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pumpctl"),
                               "library", "compile", src, "--key", key_path, "--out", out,
                               "--library-id", "7", "--version", "1"],
                              capture_output=True, text=True)
        cli_s = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
            return 1
        bin_path = os.path.join(tmp, "pt7-fixed.bin")
        with open(bin_path, "wb") as f:
            f.write(data)
        dev = device_figures(bin_path)
        n_drug_entries = sum(1 for a in m["care_areas"] for e in a["entries"]
                             if e["drug_id"] != dl.BASIC_DRUG_ID)
        n_records = sum(len(a["entries"]) for a in m["care_areas"])
        drugs = len({e["drug_id"] for a in m["care_areas"] for e in a["entries"]})
        size = len(data)
        load_s = size * 10.0 / BAUD
        print("PT-7  drug library, %d care areas, %d drug entries (+%d basic-infusion records, "
              "%d drugs, %d warnings)" % (len(m["care_areas"]), n_drug_entries,
                                          n_records - n_drug_entries, drugs,
                                          len(ck.warnings(problems))))
        print("  compile (read CSV + schema + checks + compile + sign), best of 3  "
              "%6.3f s  target <= %.1f s  ratio %.2f   (check %.3f s, compile %.3f s)"
              % (best[0], TARGET_COMPILE_S, best[0] / TARGET_COMPILE_S, best[1], best[2]))
        print("  `pumpctl library compile` command incl. interpreter start-up  %6.3f s"
              % cli_s)
        print("  binary size               %7d B  target <= %d B  ratio %.2f   (%.1f B per record)"
              % (size, TARGET_SIZE_B, size / float(TARGET_SIZE_B), size / float(n_records)))
        print("  load over %d baud, link-bound minimum size*10/%d  %6.1f s" % (BAUD, BAUD,
                                                                               load_s))
        try:
            loaded_s, cmd_s, lib_line = throttled_load(out, key_path, tmp)
            print("  load measured: `pumpctl library load` -> `pumpctl sim --baud %d` "
                  "(MicroPython, real time)  %6.1f s  target <= %.0f s  ratio %.2f   "
                  "(whole command incl. start-up and login %.1f s; link-bound %.1f s; "
                  "status: %s)" % (BAUD, loaded_s, TARGET_LOAD_S, loaded_s / TARGET_LOAD_S,
                                   cmd_s, load_s, lib_line))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print("  load measured: FAILED: %s" % e)
        if dev is None:
            print("  MicroPython not installed: pump-side figures skipped")
        else:
            print("  pump-side verify (MicroPython unix, CRC-32 + HMAC-SHA256, 512 B chunks)  "
                  "%6.3f s; heap allocated during verify %d B (library %d B not loaded)"
                  % (dev["verify_us"] / 1e6, dev["verify_alloc_b"], size))
            print("  pump-side look-up by binary search (seek + read), mean of %d  %6.1f us"
                  % (dev["lookups"], dev["lookup_us"] / float(dev["lookups"])))
            heap = load_heap_figures(bin_path, tmp)
            print("  pump-side heap during the load (MicroPython unix x64, gc.mem_alloc "
                  "high-water): peak %d B above the idle logged-in pump (worst load cycle "
                  "allocates %d B); library open after the commit: +%d B live; the %d B "
                  "library is never on the heap" % (heap["peak_above_base"], heap["cycle_max"],
                                                    heap["live_after"] - heap["base_live"],
                                                    heap["library_bytes"]))
            print("  pump-side commit cycle (verify the slot from its file + switch), "
                  "MicroPython unix  %6.3f s" % (heap["commit_us"] / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
