"""Build the cffi (API mode, out-of-line) binding of the C safety core.

Owns the host binding's build: the cdef is derived from
``include/safety_core.h`` itself (comments, preprocessor lines and the C++
guard stripped, ``#define`` integer constants exported), so the header stays
the single source of the API.  ``python safety_core/_build_cffi.py`` writes
``safety_core/_sc_cffi*.so`` in place for the editable install.
``make_ffi()`` is also used by the mutation tests to build variants of the C.
"""
import os
import re
import shutil
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "include", "safety_core.h")
SOURCE = os.path.join(HERE, "src", "safety_core.c")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]


def cdef_from_header(path=HEADER):
    text = open(path).read()
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    consts = {}
    lines = []
    for line in text.splitlines():
        m = re.match(r"\s*#define\s+(SC_\w+)\s+(.+)$", line)
        if m:
            consts[m.group(1)] = m.group(2).strip()
            continue
        if line.lstrip().startswith("#"):
            continue
        lines.append(line)
    body = "\n".join(lines)
    # array sizes must be literal for cffi
    for size in ("SC_AIR_BUCKETS", "SC_WINDOW_BUCKETS"):
        body = body.replace("[%s]" % size, "[%s]" % eval_const(size, consts))
    defines = "\n".join("#define %s ..." % name for name in sorted(consts))
    return defines + "\n" + body


def eval_const(name, consts):
    expr = consts[name]
    expr = re.sub(r"(\d+)u\b", r"\1", expr)
    return int(eval(expr, {}, {}))


def make_ffi(module_name, source=SOURCE, extra_cflags=()):
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_header())
    ffi.set_source(module_name, '#include "safety_core.h"', sources=[source],
                   include_dirs=[os.path.dirname(HEADER)],
                   extra_compile_args=CFLAGS + list(extra_cflags))
    return ffi


def build(module_name, out_dir, source=SOURCE, tmp_dir=None, extra_cflags=()):
    """Compile ``module_name`` (a top-level name) into out_dir; returns the .so path."""
    ffi = make_ffi(module_name, source, extra_cflags)
    tmp_dir = tmp_dir or os.path.join(out_dir, "build-" + module_name)
    so = ffi.compile(tmpdir=tmp_dir, verbose=False)
    dest = os.path.join(out_dir, os.path.basename(so))
    if os.path.abspath(so) != os.path.abspath(dest):
        shutil.copy2(so, dest)
    return dest


def main():
    build_dir = os.path.join(os.path.dirname(HERE), "build", "cffi")
    ffi = make_ffi("safety_core._sc_cffi")
    so = ffi.compile(tmpdir=build_dir, verbose=False)
    dest = os.path.join(HERE, os.path.basename(so))
    shutil.copy2(so, dest)
    print("built %s" % os.path.relpath(dest, os.path.dirname(HERE)))


if __name__ == "__main__":
    sys.exit(main())
