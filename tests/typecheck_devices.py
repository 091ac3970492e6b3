"""Type-check the device code against the MicroPython port stubs (`make typecheck`).

Owns the static check of what cannot run here: each board backend, the shared
device drivers and the firmware entry point are checked by mypy against the
official stub packages of their port (``micropython-rp2-rpi-pico-stubs``,
``micropython-esp32-stubs``), each installed into its own folder under
``build/stubs`` because both define ``machine``.  Only errors in our files count;
errors inside the stub packages themselves are not ours to fix.
"""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["hal/__init__.py", "hal/devices.py", "hal/vfs_storage.py", "hal/stdio_port.py",
          "hal/inert.py", "hal/ram_storage.py", "firmware/main.py", "firmware/image_check.py"]
PORTS = {
    "rp2": ("micropython-rp2-rpi-pico-stubs", ["hal/rp2040/__init__.py"]),
    "esp32": ("micropython-esp32-stubs", ["hal/esp32/__init__.py"]),
}
OURS = ("hal/", "firmware/", "safety_core/", "sim/")


def install_stubs(port, package):
    target = os.path.join(REPO, "build", "stubs", port)
    if not os.path.exists(os.path.join(target, "machine.pyi")):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        target, package], check=True)
    return target


def check(port):
    package, files = PORTS[port]
    stubs = install_stubs(port, package)
    env = dict(os.environ, MYPYPATH=stubs)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-site-packages",
                           "--check-untyped-defs", "--follow-imports=silent",
                           "--ignore-missing-imports", "--platform", port,
                           "--python-version", "3.11", "--no-error-summary"] + COMMON + files,
                          cwd=REPO, env=env, capture_output=True, text=True)
    return [line for line in proc.stdout.splitlines() if line.startswith(OURS)]


def main():
    failed = 0
    for port in PORTS:
        problems = check(port)
        print("typecheck %-5s %s" % (port, "clean" if not problems else
                                     "%d errors" % len(problems)))
        for line in problems:
            print("  " + line)
        failed += len(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
