"""Firmware image check (SR-AL-4) under CPython and MicroPython: a good image passes, every
kind of damage fails with a message naming the file and the problem.

Each test builds a small image in a fresh folder under /tmp (os.mkdir, works on both
runtimes) and removes it afterwards.
"""
import hashlib
import json
import os

from firmware import image_check as ic

try:
    from binascii import hexlify
except ImportError:  # pragma: no cover
    hexlify = None

FILES = {
    "main.py": b"import firmware\n",
    "firmware/__init__.mpy": b"M\x06\x00\x1f" + bytes(range(200)),
    "hal/devices.mpy": b"M\x06\x00\x1f" + b"\xa5" * 1500,   # > one 512-byte chunk
}


def _hex(data):
    return hexlify(hashlib.sha256(data).digest()).decode()


def _is_dir(path):
    return os.stat(path)[0] & 0x4000 != 0


def _rmtree(path):
    for name in os.listdir(path):
        full = path + "/" + name
        if _is_dir(full):
            _rmtree(full)
        else:
            os.remove(full)
    os.rmdir(path)


def _write(root, rel, data):
    parts = rel.split("/")
    d = root
    for part in parts[:-1]:
        d = d + "/" + part
        try:
            os.mkdir(d)
        except OSError:
            pass
    with open(root + "/" + rel, "wb") as f:
        f.write(data)


def _make_image(files=None):
    files = files or FILES
    root = "/tmp/image_check_" + hexlify(os.urandom(6)).decode()
    os.mkdir(root)
    entries = []
    for rel in sorted(files):
        _write(root, rel, files[rel])
        entries.append({"path": rel, "size": len(files[rel]), "sha256": _hex(files[rel])})
    listing = "".join("%s  %s\n" % (e["sha256"], e["path"]) for e in entries)
    manifest = {"format": 1, "board": "pico", "files": entries,
                "image_sha256": _hex(listing.encode())}
    _write(root, "manifest.json", json.dumps(manifest).encode())
    return root, manifest


def _rewrite_manifest(root, manifest):
    _write(root, "manifest.json", json.dumps(manifest).encode())


def _flip(path, offset):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= 0x01
    with open(path, "wb") as f:
        f.write(data)


def test_good_image_passes_and_hash_is_sha256sum_listing_SR_AL_4():
    root, manifest = _make_image()
    try:
        passed, detail = ic.check_image(root)
        assert passed, detail
        assert "3 files verified" in detail
        assert ic.image_sha256([(e["path"], e["sha256"]) for e in manifest["files"]]) == \
            manifest["image_sha256"]
        assert ic.check_image(root + "/", manifest["image_sha256"])[0]
    finally:
        _rmtree(root)


def test_file_sha256_reads_in_chunks():
    root, _ = _make_image()
    try:
        size, digest = ic.file_sha256(root + "/hal/devices.mpy",
                                      memoryview(bytearray(64)))
        assert (size, digest) == (len(FILES["hal/devices.mpy"]), _hex(FILES["hal/devices.mpy"]))
    finally:
        _rmtree(root)


def test_flipped_byte_names_the_file_SR_AL_4():
    root, _ = _make_image()
    try:
        _flip(root + "/hal/devices.mpy", 1400)
        assert ic.check_image(root) == (False, "hal/devices.mpy: sha256 mismatch")
    finally:
        _rmtree(root)


def test_missing_and_truncated_files_SR_AL_4():
    root, _ = _make_image()
    try:
        with open(root + "/firmware/__init__.mpy", "wb") as f:
            f.write(b"M\x06")
        passed, detail = ic.check_image(root)
        assert not passed and detail == "firmware/__init__.mpy: size 2 bytes, expected 204"
        os.remove(root + "/firmware/__init__.mpy")
        assert ic.check_image(root) == (False, "firmware/__init__.mpy: missing")
    finally:
        _rmtree(root)


def test_manifest_missing_unreadable_or_altered_SR_AL_4():
    root, manifest = _make_image()
    try:
        listed = manifest["files"][0]
        listed["sha256"] = "0" * 64            # edited entry: the image hash no longer matches
        _rewrite_manifest(root, manifest)
        passed, detail = ic.check_image(root)
        assert not passed and detail.startswith("image hash mismatch"), detail
        _write(root, "manifest.json", b"{not json")
        assert ic.check_image(root) == (False, "manifest unreadable (not valid JSON)")
        os.remove(root + "/manifest.json")
        assert ic.check_image(root) == (False, "manifest missing")
        assert ic.check_image(root + "/nowhere") == (False, "manifest missing")
    finally:
        _rmtree(root)


def test_other_expected_image_is_refused_SR_AL_4():
    root, _ = _make_image()
    try:
        passed, detail = ic.check_image(root, "ab" * 32)
        assert not passed and "not the expected image abababababab" in detail, detail
    finally:
        _rmtree(root)


def test_unsafe_or_duplicate_paths_refused():
    for bad in ("/main.py", "../main.py", "hal//devices.mpy", "hal/./x.mpy", "", "a\\b"):
        assert not ic.safe_path(bad), bad
    assert ic.safe_path("hal/rp2040/board_pico.mpy")
    root, manifest = _make_image()
    try:
        manifest["files"][0]["path"] = "../escape.py"
        _rewrite_manifest(root, manifest)
        passed, detail = ic.check_image(root)
        assert not passed and "unsafe path" in detail, detail
    finally:
        _rmtree(root)


def test_stale_source_shadowing_an_mpy_fails_SR_AL_4():
    root, _ = _make_image()
    try:
        _write(root, "hal/devices.py", b"# old source: MicroPython imports .py before .mpy\n")
        passed, detail = ic.check_image(root)
        assert not passed
        assert detail == ("hal/devices.py: stale source file would be imported instead of "
                          "hal/devices.mpy"), detail
    finally:
        _rmtree(root)


def test_unlisted_native_module_fails_SR_AL_4():
    root, _ = _make_image()
    try:
        _write(root, "lib/sc_native.mpy", b"M\x06\x13\x1f")
        assert ic.check_image(root) == (False, "lib/sc_native.mpy: present but not part of "
                                               "the image")
    finally:
        _rmtree(root)
