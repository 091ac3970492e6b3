"""One source for the numbers shared by the C core and the Python side (SR-CORE-1).

``safety_core/constants.py`` holds every constant of ``safety_core/include/safety_core.h``
(and the private ``#define``s of ``safety_core/src/safety_core.c``) that the Python side
uses; the reference core and the facade import them from there.  These tests parse the C
sources and fail when a value drifts, when the reference or the facade uses a constant
the C does not define, or defines one of its own, and check the other numbers the
bindings share with the C (state word indices, name tables).  Also: the facade's
``delivered_ul()`` / ``kvo_ul()`` are exact and never build a heap int on a 32-bit
MicroPython port (PT-8).
"""
import ast
import os
import re
import subprocess
import sys

from hypothesis import given, settings, strategies as st

import safety_core as sc
from safety_core import constants
from tests.test_micropython_suite import micropython, micropython_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(REPO, "safety_core", "include", "safety_core.h")
SOURCE = os.path.join(REPO, "safety_core", "src", "safety_core.c")
REFERENCE = os.path.join(REPO, "safety_core", "reference.py")
FACADE = os.path.join(REPO, "safety_core", "__init__.py")
NATIVE = os.path.join(REPO, "safety_core", "native.py")

# Python name -> C name where the C name is not "SC_" + the Python name (none today).
C_NAMES = {}
# C constants the Python side deliberately does not mirror (none today).
C_ONLY = ()
# Facade module-level integers that are not core constants: C type ranges of the
# clamping (int32_t) and MicroPython's 32-bit small-int bound.
FACADE_OWN_INTS = ("_SMALL", "_I32_MIN", "_I32_MAX")

SMALL_INT_MAX_32BIT = 2 ** 30 - 1


# ---- parsing the C ----------------------------------------------------------------------
def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a // b,  # C integer division
           ast.Mod: lambda a, b: a % b, ast.LShift: lambda a, b: a << b,
           ast.RShift: lambda a, b: a >> b, ast.BitOr: lambda a, b: a | b,
           ast.BitAnd: lambda a, b: a & b, ast.BitXor: lambda a, b: a ^ b}


def _c_value(expr, known):
    """Integer value of a C constant expression over literals and known names, or None."""
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr.strip())
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else ~v
        raise ValueError(ast.dump(node))
    try:
        return ev(tree)
    except (ValueError, KeyError):
        return None


def c_constants(paths=(HEADER, SOURCE)):
    """{C name: value} of every integer #define and enum member in ``paths``."""
    known = {}
    for path in paths:
        with open(path) as f:
            text = _strip_comments(f.read())
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+(.+)$", text, re.M):
            value = _c_value(m.group(2), known)
            if value is not None:
                known[m.group(1)] = value
        for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
            nxt = 0
            for item in body.split(","):
                item = item.strip()
                if not item:
                    continue
                name, _, expr = item.partition("=")
                if expr:
                    nxt = _c_value(expr, known)
                known[name.strip()] = nxt
                nxt += 1
    return known


def c_struct_words(name, text=None):
    """Field names of a typedef'd struct of uint32_t words, nested structs and arrays
    expanded, in declaration order (one entry per 32-bit word)."""
    if text is None:
        with open(HEADER) as f:
            text = _strip_comments(f.read())
    m = re.search(r"typedef\s+struct\s*\{([^}]*)\}\s*%s\s*;" % name, text)
    assert m, name
    consts = c_constants()
    words = []
    for decl in m.group(1).split(";"):
        decl = decl.strip()
        if not decl:
            continue
        ftype, fname = decl.split()
        count = 1
        arr = re.match(r"(\w+)\[(.+)\]$", fname)
        if arr:
            fname, count = arr.group(1), _c_value(arr.group(2), consts)
        if ftype in ("uint32_t", "int32_t"):
            words += [fname] if count == 1 else ["%s[%d]" % (fname, i) for i in range(count)]
        else:
            words += [fname + "." + w for w in c_struct_words(ftype, text)]
    return words


def python_constants():
    """{name: value} of the public integer constants of safety_core/constants.py."""
    return {k: v for k, v in vars(constants).items()
            if k.isupper() and not k.startswith("_") and isinstance(v, int)}


def _module_tree(path):
    with open(path) as f:
        return ast.parse(f.read(), path)


def imported_from_constants(path):
    names = set()
    for node in ast.walk(_module_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module == "safety_core.constants":
            names |= {a.name for a in node.names}
    return names


def module_level_int_names(path):
    """Names bound at module level to an int literal or a const(...) call."""
    found = []
    for node in _module_tree(path).body:
        if isinstance(node, ast.Assign):
            v = node.value
            if ((isinstance(v, ast.Constant) and isinstance(v.value, int)
                 and not isinstance(v.value, bool)) or
                    (isinstance(v, ast.UnaryOp) and isinstance(v.operand, ast.Constant)) or
                    (isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const")):
                found += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return found


# ---- one source ---------------------------------------------------------------------------
def test_c_parser_reads_defines_and_enums(tmp_path):
    path = tmp_path / "x.h"
    path.write_text("#define A 3u /* x */\n#define B (1u << 2)\n#define C (A / B)\n"
                    "#define F(x) ((x) + 1)\nenum { E0, E1 = 7, E2 };\n")
    assert c_constants([str(path)]) == {"A": 3, "B": 4, "C": 0, "E0": 0, "E1": 7, "E2": 8}


def test_every_python_constant_has_the_c_value_SR_CORE_1():
    c = c_constants()
    py = python_constants()
    assert len(py) >= 50, sorted(py)
    missing = sorted(n for n in py if C_NAMES.get(n, "SC_" + n) not in c)
    assert not missing, "constants.py names with no C #define: %s" % missing
    differ = ["%s = %d in constants.py, %s = %d in the C" % (n, v, C_NAMES.get(n, "SC_" + n),
                                                           c[C_NAMES.get(n, "SC_" + n)])
              for n, v in sorted(py.items()) if c[C_NAMES.get(n, "SC_" + n)] != v]
    assert not differ, differ


def test_every_c_constant_is_in_constants_py_SR_CORE_1():
    """A constant added to the C API (or the core's private arithmetic) is mirrored, so
    the reference can never keep an older copy of a limit."""
    py_c_names = {C_NAMES.get(n, "SC_" + n) for n in python_constants()}
    c = c_constants()
    unmirrored = sorted(n for n in c if n.startswith("SC_") and n not in py_c_names
                        and n not in C_ONLY)
    assert not unmirrored, "C constants missing from safety_core/constants.py: %s" % unmirrored


def test_reference_takes_every_constant_from_constants_py_SR_CORE_1():
    c = c_constants()
    used = {n for n in imported_from_constants(REFERENCE)
            if isinstance(getattr(constants, n), int)}    # not the layout tuples
    assert {"RATE_MAX_UL_PER_H", "VTBI_MAX_UL", "PHASE_RUNNING", "FAULT_HEARTBEAT",
            "MAGIC", "U32_MAX"} <= used
    not_in_c = sorted(n for n in used if C_NAMES.get(n, "SC_" + n) not in c)
    assert not not_in_c, "the reference uses constants the C does not define: %s" % not_in_c
    assert not module_level_int_names(REFERENCE), (
        "reference.py defines constants of its own: %s" % module_level_int_names(REFERENCE))
    calls = [n.lineno for n in ast.walk(_module_tree(REFERENCE))
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "const"]
    assert not calls, "const() in reference.py, lines %s" % calls


def test_facade_takes_core_constants_from_constants_py_SR_CORE_1():
    own = module_level_int_names(FACADE)
    assert sorted(own) == sorted(FACADE_OWN_INTS), own
    c = c_constants()
    for name in imported_from_constants(FACADE):
        if not isinstance(getattr(constants, name), int):
            continue                                  # the layout tuples
        assert C_NAMES.get(name, "SC_" + name) in c, name
        assert getattr(sc, name) == getattr(constants, name)


def test_facade_loads_the_reference_core_only_where_it_is_used_PT_8(tmp_path):
    """Where the native module is the core (a board with lib/sc_native.mpy), importing
    the facade leaves the reference's bytecode off the heap; where the reference is the
    default core it is loaded with the facade (early: see safety_core/__init__.py); on
    the host (cffi) only when asked for."""
    code = ("import sys, safety_core as sc\n"
            "host = 'safety_core._sc_cffi' in sys.modules\n"
            "assert not host or 'safety_core.reference' not in sys.modules\n"
            "if host:\n"
            "    sc.SafetyCore(backend='cffi')\n"
            "    assert 'safety_core.reference' not in sys.modules\n"
            "sc.SafetyCore(backend='reference')\n"
            "print('safety_core.reference' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr
    # MicroPython: a stand-in sc_native on the path is the device build
    check = "import sys, safety_core; print('safety_core.reference' in sys.modules)"
    proc = subprocess.run([micropython(), "-c", check], cwd=REPO, env=micropython_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr
    (tmp_path / "sc_native.py").write_text("")
    proc = subprocess.run([micropython(), "-c", check], cwd=REPO,
                          env=micropython_env(str(tmp_path)), capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


# ---- other numbers the bindings share with the C ------------------------------------------
def test_phase_and_fault_name_tables_follow_the_c_values():
    c = c_constants()
    for value, name in enumerate(sc.PHASE_NAMES):
        assert c["SC_PHASE_" + name] == value, name
    assert len(sc.PHASE_NAMES) == len([n for n in c if n.startswith("SC_PHASE_")])
    bits = [bit for bit, _ in sc.FAULT_NAMES]
    assert sorted(bits) == sorted(v for n, v in c.items() if n.startswith("SC_FAULT_"))
    assert sorted(sc.FIELDS) == sorted(v for n, v in c.items()
                                       if n.startswith("SC_FIELD_") and n != "SC_FIELD_NONE")


def test_native_word_indices_follow_sc_state_t():
    """safety_core/native.py reads sc_state_t by 32-bit word index (no import here:
    it needs the MicroPython native module); constants.STATE_SCALARS names every word."""
    words = c_struct_words("sc_state_t")
    idx = {}
    for node in _module_tree(NATIVE).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            idx[node.targets[0].id] = node.value.value
    expect = {"_USTEP_PL": "ustep_volume_pl", "_PHASE": "phase", "_FAULTS": "faults",
              "_VTBI_STEPS": "vtbi_steps", "_DELIVERED": "delivered_steps",
              "_KVO_STEPS": "kvo_steps", "_MAGIC": "magic"}
    for const_name, field in expect.items():
        assert words[idx[const_name]] == field, (const_name, idx[const_name], field)
    # every scalar word in order (program fields by their own names), then the arrays
    scalars = [w.split(".")[-1] for w in words[:len(constants.STATE_SCALARS)]]
    assert scalars == list(constants.STATE_SCALARS)
    assert constants.STATE_WORDS == len(words)
    n = len(constants.STATE_SCALARS)
    assert words[n] == "air_bucket_nl[0]"
    assert words[n + constants.AIR_BUCKETS] == "win_steps[0]"
    assert words[n + constants.AIR_BUCKETS + constants.WINDOW_BUCKETS] == "win_boluses[0]"
    for name in ("segment_held", "patient_boluses", "flags"):
        assert constants.state_word_index(name) == scalars.index(name)


def test_hot_tick_fields_are_within_one_thumb_load_PT_1():
    """The fields a tick touches sit in the first 32 words of sc_state_t, where a
    Cortex-M0+ ldr/str reaches them from the state pointer (5-bit word offset)."""
    words = c_struct_words("sc_state_t")
    assert len(constants.STATE_HOT) <= 32
    assert list(constants.STATE_HOT) == words[:len(constants.STATE_HOT)]


# ---- delivered_ul / kvo_ul: exact, small ints only (PT-8) -------------------------------------
class _Tracked(int):
    """An int recording the largest magnitude any arithmetic on it produced."""
    peak = 0

    def _w(self, v):
        _Tracked.peak = max(_Tracked.peak, abs(v))
        return _Tracked(v)


for _op in ("add", "radd", "sub", "rsub", "mul", "rmul", "floordiv", "rfloordiv", "mod",
            "rmod", "lshift", "rshift", "and", "or"):
    def _make(op):
        base = getattr(int, "__%s__" % op)
        return lambda self, other: self._w(base(self, other))
    setattr(_Tracked, "__%s__" % _op, _make(_op))


def _peak_of(steps, pl):
    _Tracked.peak = 0
    result = sc.steps_to_ul(_Tracked(steps), _Tracked(pl))
    return int(result), _Tracked.peak


PL = st.integers(constants.USTEP_VOLUME_MIN_PL, constants.USTEP_VOLUME_MAX_PL)


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, constants.U32_MAX), PL)
def test_steps_to_ul_is_the_exact_floor_PT_8(steps, pl):
    assert sc.steps_to_ul(steps, pl) == steps * pl // 10 ** 6


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, SMALL_INT_MAX_32BIT), PL)
def test_steps_to_ul_never_leaves_the_32_bit_small_int_range_PT_8(steps, pl):
    result, peak = _peak_of(steps, pl)
    assert result == steps * pl // 10 ** 6
    assert peak <= max(steps, 10 ** 8) <= SMALL_INT_MAX_32BIT, (steps, pl, peak)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, SMALL_INT_MAX_32BIT), PL)
def test_steps_to_ul_edges_PT_8(steps, pl):
    # around every multiple of 10**6 / 10**3 and at the extremes
    for s in (steps - steps % 1000, steps - steps % 1000000, steps | 999, 0, 999999,
              SMALL_INT_MAX_32BIT, constants.U32_MAX):
        assert sc.steps_to_ul(s, pl) == s * pl // 10 ** 6


def test_reachable_delivered_steps_are_small_ints_at_the_board_calibration_PT_8():
    """VTBI_MAX_UL at 15,625 pL is 639,936,000 steps: a small int, and so is every
    intermediate of delivered_ul(); below 9,313 pL the step count itself is not."""
    for pl in (15625, 9313, constants.USTEP_VOLUME_MAX_PL):
        steps = constants.VTBI_MAX_UL * 10 ** 6 // pl
        assert steps <= SMALL_INT_MAX_32BIT
        result, peak = _peak_of(steps, pl)
        assert result == steps * pl // 10 ** 6
        assert result in (constants.VTBI_MAX_UL - 1, constants.VTBI_MAX_UL)
        assert peak <= SMALL_INT_MAX_32BIT
    assert constants.VTBI_MAX_UL * 10 ** 6 // 9312 > SMALL_INT_MAX_32BIT


class _StepsImpl:
    """A prepared backend holding given step counts (SafetyCore(impl=...))."""

    def __init__(self):
        self.delivered_steps = 0
        self.kvo_steps = 0

    def init(self, ustep_volume_pl):
        return None


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, constants.U32_MAX), st.integers(0, constants.U32_MAX), PL)
def test_delivered_ul_and_kvo_ul_match_the_nl_figures_PT_8(delivered, kvo, pl):
    impl = _StepsImpl()
    core = sc.SafetyCore(pl, impl=impl)
    impl.delivered_steps, impl.kvo_steps = delivered, kvo
    assert core.delivered_ul() == delivered * pl // 10 ** 6 == core.delivered_nl() // 1000
    assert core.kvo_ul() == kvo * pl // 10 ** 6 == core.kvo_nl() // 1000


def test_delivered_ul_on_the_real_backends_after_a_delivery_PT_8():
    for backend in [b for b in ("cffi", "reference") if b in sc.available_backends()]:
        core = sc.SafetyCore(15625, backend=backend)
        core.load_program(500000, 1500, kvo_ul_per_h=20000)
        core.start()
        hb = 0
        while core.phase == sc.PHASE_RUNNING:
            hb += 1
            core.run(20, 0, False, hb, 100)
        for _ in range(5):
            hb += 1
            core.run(20, 0, False, hb, 100)
        assert core.delivered_ul() == 1500 == core.delivered_nl() // 1000, backend
        assert core.kvo_ul() == core.kvo_steps * 15625 // 10 ** 6 > 0, backend
