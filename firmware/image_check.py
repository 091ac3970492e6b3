"""Firmware image check (SR-AL-4): do the files on the board match their manifest?

Owns the manifest's integrity rules, shared by the device and the host:

* ``check_image(root)`` reads ``<root>/manifest.json`` (written by
  ``host_tools/firmware_image.py``) and returns ``(passed, detail)``.  It passes
  only if the manifest is readable, its ``image_sha256`` matches the listed
  (path, sha256) pairs, every listed file exists with the listed size and
  sha256, and nothing on the board would silently replace a listed module (a
  stale ``X.py`` next to a listed ``X.mpy`` is imported first by MicroPython; a
  ``lib/sc_native.mpy`` that the image does not list would be picked as the
  safety core).  ``detail`` names the first problem in words a technician
  understands (``hal/devices.mpy: sha256 mismatch``, ``manifest missing``).
  The power-on self test calls it; ``pumpctl deploy`` calls it on the image
  folder before copying anything.
* ``image_sha256(entries)``: the image hash, defined once here: sha256 of the
  ``sha256sum``-style listing ``"<sha256 hex>  <path>\\n"`` of every file,
  sorted by path (so ``sha256sum`` on the host can reproduce it).
* ``file_sha256(path, buf)``: one file hashed in chunks read into one
  preallocated buffer (no allocation per chunk).

This checks integrity, not origin: whoever can write the board's files can
write a consistent manifest.  ``expected_image_sha256`` lets the caller pin the
image hash to a value kept elsewhere.  MicroPython-portable (hashlib, json,
open, os.stat only).
"""
import hashlib
import json
import os

try:
    from binascii import hexlify

    def _hex(digest):
        return hexlify(digest).decode()
except ImportError:  # pragma: no cover - ports built without binascii
    def _hex(digest):
        return "".join("%02x" % b for b in digest)

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 512
NATIVE_MODULE = "lib/sc_native.mpy"


def join(root, path):
    """``root`` + ``path`` with one separator; root "" or "." is the current directory."""
    if root in ("", "."):
        return path
    if root.endswith("/"):
        return root + path
    return root + "/" + path


def safe_path(path):
    """True for a plain relative path: no leading '/', no '..', no empty or '.' part."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        return False
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return False
    return True


def file_sha256(path, buf=None):
    """(size, sha256 hex) of a file, read in chunks into ``buf`` (a memoryview)."""
    if buf is None:
        buf = memoryview(bytearray(CHUNK))
    h = hashlib.sha256()
    size = 0
    chunk = len(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(buf if n == chunk else buf[:n])
            size += n
    return size, _hex(h.digest())


def image_sha256(entries):
    """Image hash over (path, sha256 hex) pairs, in path order."""
    h = hashlib.sha256()
    for path, digest in sorted(entries):
        h.update(("%s  %s\n" % (digest, path)).encode())
    return _hex(h.digest())


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load_manifest(root):
    """(manifest dict, None) or (None, problem in words)."""
    try:
        f = open(join(root, MANIFEST), "rb")
    except OSError:
        return None, "manifest missing"
    try:
        try:
            manifest = json.load(f)
        except (ValueError, UnicodeError):
            return None, "manifest unreadable (not valid JSON)"
        except OSError as e:                  # a flash read error, or a directory
            return None, "manifest unreadable (%s)" % (e,)
    finally:
        f.close()
    if not isinstance(manifest, dict):
        return None, "manifest unreadable (not a JSON object)"
    if manifest.get("format") != FORMAT:
        return None, "manifest format %r not supported (expected %d)" % (
            manifest.get("format"), FORMAT)
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return None, "manifest lists no files"
    for entry in files:
        if not isinstance(entry, dict):
            return None, "manifest file entry is not an object"
        path = entry.get("path")
        if not safe_path(path):
            return None, "manifest lists an unsafe path %r" % (path,)
        if path == MANIFEST:
            return None, "manifest lists itself"
        if not isinstance(entry.get("size"), int) or not isinstance(entry.get("sha256"), str):
            return None, "%s: manifest entry without size or sha256" % path
    if not isinstance(manifest.get("image_sha256"), str):
        return None, "manifest has no image_sha256"
    return manifest, None


def check_image(root="", expected_image_sha256=None):
    """(passed, detail) for the image installed below ``root``; see the module docstring."""
    manifest, problem = load_manifest(root)
    if manifest is None:
        return False, problem
    files = manifest["files"]
    listed = {}
    for entry in files:
        if entry["path"] in listed:
            return False, "%s: listed twice in the manifest" % entry["path"]
        listed[entry["path"]] = entry
    digest = image_sha256([(e["path"], e["sha256"]) for e in files])
    if digest != manifest["image_sha256"]:
        return False, "image hash mismatch: the manifest was altered or damaged"
    if expected_image_sha256 is not None and digest != expected_image_sha256:
        return False, "image %s is not the expected image %s" % (digest[:12],
                                                                 expected_image_sha256[:12])
    buf = memoryview(bytearray(CHUNK))
    for entry in files:
        path = entry["path"]
        full = join(root, path)
        try:
            size, sha = file_sha256(full, buf)
        except OSError:
            return False, "%s: missing" % path
        if size != entry["size"]:
            return False, "%s: size %d bytes, expected %d" % (path, size, entry["size"])
        if sha != entry["sha256"]:
            return False, "%s: sha256 mismatch" % path
        if path.endswith(".mpy"):
            source = path[:-4] + ".py"
            if source not in listed and _exists(join(root, source)):
                return False, "%s: stale source file would be imported instead of %s" % (
                    source, path)
    if NATIVE_MODULE not in listed and _exists(join(root, NATIVE_MODULE)):
        return False, "%s: present but not part of the image" % NATIVE_MODULE
    return True, "image %s: %d files verified" % (digest[:12], len(files))
