"""`pumpctl deploy`: copy a firmware image to a board over its raw REPL (SR-SVC-3, SR-AL-4).

Owns getting ``build/firmware/<board>/`` (made by ``make firmware``, see
``host_tools/firmware_image.py``) onto a MicroPython board with mpremote used as
a library (``mpremote.transport_serial.SerialTransport``):

1. the image folder is verified on the host with the same code the board's
   self test runs (``firmware.image_check.check_image``); a damaged image is
   refused before anything is copied;
2. the board is put in the raw REPL and asked what it is (``sys.platform``,
   ``sys.implementation._mpy``): a pico image goes only on an ``rp2`` board, an
   esp32s3 image only on an ``esp32`` one, and the board's MicroPython must
   load the image's mpy version (and, when the image carries
   ``lib/sc_native.mpy``, its native architecture).  A real board is then soft
   reset so no application runs during the copy;
3. one small script run on the board reports size and sha256 of every image
   file already there, so only what changed is copied ("N changed, M
   unchanged, K new"), each file to ``<path>.tmp`` and renamed into place, the
   board's ``manifest.json`` removed first and written last (an interrupted
   deploy leaves "manifest missing", which the self test refuses); stale
   sources that MicroPython would import instead of a listed ``.mpy`` and a
   native module the image does not list are removed;
4. every file is hashed again ON THE BOARD and compared with the manifest, and
   the deployed ``firmware/image_check`` is run there as the self test will.

The pump firmware takes Ctrl-C off its port (SR-SVC-4), so a board running it
must be started in maintenance boot (``firmware/main.py``) to be reached.

Paths on the board are relative to the board's current directory: ``BOARD_ROOT``
(``/``, the board files' ``IMAGE_ROOT``, where the self test looks) on an rp2/esp32
board, entered after its soft reset; the working directory of the process for
the MicroPython unix port (the development configuration the end-to-end
test uses: ``micropython`` on a pseudo-terminal, ``sys.platform == 'linux'``;
it is not soft reset, since Ctrl-D in its raw REPL ends the process).

Every failure raises ``DeployError`` with a message naming the problem; the
click command turns it into a non-zero exit.
"""
import ast
import contextlib
import io
import json
import os

from firmware import image_check
from host_tools.firmware_image import BOARDS, NATIVE_ARCH_CODES

BOARD_PLATFORMS = dict((name, b[3]) for name, b in BOARDS.items())  # pico: rp2, esp32s3: esp32
DEV_PLATFORMS = ("linux", "darwin")          # the MicroPython unix port
BOARD_ROOT = "/"      # = IMAGE_ROOT of hal/rp2040/board_pico.py and hal/esp32/board_devkit.py
CHUNK = 256                                  # bytes per write on the board (mpremote's own)

# Run on the board: for each path, (path, '-') missing, (path, 'd') a directory,
# or (path, 'size sha256hex').  Paths are a literal list filled in by the host.
HASH_SCRIPT = """import os,hashlib,binascii
def _h(p,b=memoryview(bytearray(512))):
 try:
  s=os.stat(p)
 except OSError:
  return '-'
 if s[0]&0x4000:
  return 'd'
 d=hashlib.sha256()
 n=0
 with open(p,'rb') as f:
  while 1:
   k=f.readinto(b)
   if not k:
    break
   d.update(b[:k])
   n+=k
 return '%%d %%s'%%(n,binascii.hexlify(d.digest()).decode())
for _p in %r:
 print(repr((_p,_h(_p))))
del _h
"""

IDENT_SCRIPT = """import sys,os
print(repr((sys.platform,getattr(sys.implementation,'_mpy',0),os.getcwd())))
"""

CHECK_SCRIPT = """import sys
sys.modules.pop('firmware.image_check',None)
from firmware.image_check import check_image
print(repr(check_image('')))
"""


class DeployError(Exception):
    """Deploy refused or failed; the message says why and what to do."""


def load_image(image_dir, board=None):
    """Verify the image folder on the host; returns (manifest, manifest bytes)."""
    if not os.path.isdir(image_dir):
        hint = board or "pico"
        raise DeployError("no firmware image at %s: run `make firmware BOARD=%s` first"
                          % (image_dir, hint))
    passed, detail = image_check.check_image(image_dir)
    if not passed:
        hint = (": run `make firmware BOARD=%s`" % (board or "pico")
                if detail == "manifest missing" else "")
        raise DeployError("image %s refused, nothing copied: %s%s" % (image_dir, detail, hint))
    with open(os.path.join(image_dir, image_check.MANIFEST), "rb") as f:
        raw = f.read()
    manifest = json.loads(raw)
    image_board = manifest.get("board")
    if image_board not in BOARD_PLATFORMS:
        raise DeployError("image %s is for an unknown board %r" % (image_dir, image_board))
    if board is not None and board != image_board:
        raise DeployError("image %s is built for %s, not %s: run `make firmware BOARD=%s`"
                          % (image_dir, image_board, board, board))
    for entry in manifest["files"]:
        if any(c.isspace() for c in entry["path"]):
            raise DeployError("image path %r contains white space" % entry["path"])
    return manifest, raw


def _parent_dirs(paths):
    dirs = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


class Board:
    """The board's raw REPL through mpremote's SerialTransport."""

    def __init__(self, port, timeout_s=5.0):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        self._error = TransportError
        self.port = port
        try:
            # timeout: no read on the port blocks longer (a pty would otherwise wait forever)
            self.transport = SerialTransport(port, baudrate=115200, timeout=timeout_s)
        except Exception as e:  # TransportError, serial.SerialException, OSError
            raise DeployError("cannot open %s: %s" % (port, e))
        self.in_raw = False

    def close(self):
        try:
            if self.in_raw:
                self.transport.exit_raw_repl()
        except Exception:
            pass
        try:
            self.transport.close()
        except Exception:
            pass

    def enter_raw_repl(self, soft_reset):
        said = io.StringIO()          # mpremote prints what it got instead of the prompt
        try:
            with contextlib.redirect_stdout(said):
                self.transport.enter_raw_repl(soft_reset=soft_reset)
        except (self._error, OSError) as e:
            heard = said.getvalue().strip()
            raise DeployError(
                "no raw REPL on %s (%s; the board said %s). Is it a MicroPython board? The "
                "pump firmware ignores Ctrl-C on its service port (SR-SVC-4): on a development "
                "board hold SELECT and SILENCE while powering it on (maintenance boot) and "
                "deploy again; a production board has no REPL and takes images through "
                "BOOTSEL" % (self.port, e, heard[:200] or "nothing"))
        self.in_raw = True

    def run(self, script, what):
        """Execute ``script`` on the board; returns its output as text."""
        from mpremote.transport import TransportExecError
        try:
            out = self.transport.exec(script)
        except TransportExecError as e:
            last = (e.error_output.strip().splitlines() or ["?"])[-1]
            raise DeployError("%s failed on the board: %s" % (what, last))
        except (self._error, OSError) as e:
            raise DeployError("%s: lost the board on %s (%s)" % (what, self.port, e))
        return out.decode("utf-8", "replace")

    def identify(self):
        out = self.run(IDENT_SCRIPT, "identify")
        try:
            platform, mpy, cwd = ast.literal_eval(out.strip().splitlines()[-1])
        except (ValueError, SyntaxError, IndexError):
            raise DeployError("unexpected answer from the board: %r" % out[-200:])
        return platform, mpy, cwd

    def hashes(self, paths):
        """{path: None | 'dir' | (size, sha256 hex)} for paths on the board."""
        out = self.run(HASH_SCRIPT % (list(paths),), "hashing files")
        result = {}  # type: dict
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                path, value = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise DeployError("unexpected answer from the board: %r" % line[:200])
            if value == "-":
                result[path] = None
            elif value == "d":
                result[path] = "dir"
            else:
                size, sha = value.split()
                result[path] = (int(size), sha)
        missing = [p for p in paths if p not in result]
        if missing:
            raise DeployError("the board did not report %s" % ", ".join(missing[:3]))
        return result

    def mkdir(self, path):
        try:
            self.transport.fs_mkdir(path)
        except (self._error, OSError) as e:
            raise DeployError("cannot create folder %s on the board: %s" % (path, e))

    def remove(self, path):
        try:
            self.transport.fs_rmfile(path)
        except (self._error, OSError) as e:
            raise DeployError("cannot remove %s on the board: %s" % (path, e))

    def write(self, path, data, progress=None):
        """Write to ``path.tmp`` then rename over ``path`` (never a half file in place)."""
        tmp = path + ".tmp"
        try:
            self.transport.fs_writefile(tmp, data, chunk_size=CHUNK,
                                        progress_callback=progress)
            self.transport.exec("import os\nos.rename(%r,%r)" % (tmp, path))
        except (self._error, OSError) as e:
            raise DeployError("writing %s on the board failed: %s" % (path, e))


def check_board(manifest, platform, mpy):
    """Refuse a board that cannot run the image; returns (development board?, warnings)."""
    board = manifest["board"]
    want = BOARD_PLATFORMS[board]
    dev = platform in DEV_PLATFORMS
    if platform != want and not dev:
        raise DeployError("this image is for %s (%s) but the board reports %r: build the "
                          "image for this board (make firmware BOARD=...)" % (board, want,
                                                                            platform))
    warnings = []
    major = int(str(manifest.get("mpy_version", "6.3")).split(".")[0])
    if mpy and (mpy & 0xFF) != major:
        raise DeployError("the board's MicroPython loads mpy v%d files, the image is mpy v%d: "
                          "flash MicroPython 1.29 on the board" % (mpy & 0xFF, major))
    if manifest.get("native_module"):
        arch = manifest.get("native_arch")
        board_arch = mpy >> 10
        minor = int(str(manifest.get("mpy_version", "6.3")).split(".")[1])
        if board_arch != NATIVE_ARCH_CODES.get(arch) or ((mpy >> 8) & 3) != minor:
            message = ("lib/sc_native.mpy is built for %s (mpy v%d.%d); the board's "
                       "MicroPython cannot load it" % (arch, major, minor))
            if not dev:
                raise DeployError(message + ": rebuild it (make natmod ARCH=...) for this board")
            warnings.append(message + " (development board: the reference core runs)")
    return dev, warnings


def plan(manifest, on_board):
    """Split the image files into (changed, unchanged, new) path lists."""
    changed, unchanged, new = [], [], []
    for entry in manifest["files"]:
        have = on_board.get(entry["path"])
        if have is None:
            new.append(entry["path"])
        elif have == (entry["size"], entry["sha256"]):
            unchanged.append(entry["path"])
        else:
            changed.append(entry["path"])
    return changed, unchanged, new


def stale_candidates(manifest):
    """Files that must not stay on the board next to this image."""
    listed = set(e["path"] for e in manifest["files"])
    out = [p[:-4] + ".py" for p in sorted(listed)
           if p.endswith(".mpy") and p[:-4] + ".py" not in listed]
    if image_check.NATIVE_MODULE not in listed:
        out.append(image_check.NATIVE_MODULE)
    return out


def deploy(port, image_dir, board=None, console=None, timeout_s=5.0):
    """Copy and verify; returns a summary dict. Raises DeployError on any failure."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TransferSpeedColumn)
    console = console or Console()
    manifest, manifest_raw = load_image(image_dir, board)
    files = manifest["files"]
    by_path = dict((e["path"], e) for e in files)
    stale = stale_candidates(manifest)
    dirs = _parent_dirs(list(by_path) + [image_check.MANIFEST])

    link = Board(port, timeout_s)
    try:
        link.enter_raw_repl(soft_reset=False)
        platform, mpy, cwd = link.identify()
        dev, warnings = check_board(manifest, platform, mpy)
        if not dev:
            link.enter_raw_repl(soft_reset=True)   # no application running during the copy
            link.run("import os\nos.chdir(%r)" % BOARD_ROOT, "going to the image root")
            platform, mpy, cwd = link.identify()
        for w in warnings:
            console.print("[yellow]warning:[/yellow] %s" % w)
        console.print("board %s: %s%s, files below %s" % (
            port, platform, " (development board, MicroPython unix port)" if dev else "", cwd))

        query = dirs + sorted(by_path) + [image_check.MANIFEST] + stale
        seen = link.hashes(query)
        for d in dirs:
            if seen[d] not in (None, "dir"):
                raise DeployError("%s on the board is a file where the image needs a folder"
                                  % d)
        for p in list(by_path) + [image_check.MANIFEST]:
            if seen[p] == "dir":
                raise DeployError("%s on the board is a folder where the image has a file" % p)
        changed, unchanged, new = plan(manifest, seen)
        to_copy = sorted(changed + new)
        manifest_same = seen[image_check.MANIFEST] == (len(manifest_raw),
                                                      _sha256(manifest_raw))
        stale_found = [p for p in stale if seen[p] is not None]

        if to_copy or stale_found or not manifest_same:
            if seen[image_check.MANIFEST] is not None:
                link.remove(image_check.MANIFEST)      # board reads "manifest missing" until done
            for d in dirs:
                if seen[d] is None:
                    link.mkdir(d)
            total = sum(by_path[p]["size"] for p in to_copy)
            with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), console=console, transient=True) as progress:
                task = progress.add_task("copying", total=total)
                done = 0
                for path in to_copy:
                    progress.update(task, description=path)
                    with open(os.path.join(image_dir, path), "rb") as f:
                        data = f.read()

                    def step(written, _size, base=done):
                        progress.update(task, completed=base + written)
                    link.write(path, data, step)
                    done += len(data)
                    progress.update(task, completed=done)
            for path in stale_found:
                link.remove(path)
            link.write(image_check.MANIFEST, manifest_raw)

        # verify: hash every file again on the board, then the self test's own check
        after = link.hashes(sorted(by_path) + [image_check.MANIFEST] + stale)
        for entry in files:
            have = after[entry["path"]]
            if have is None:
                raise DeployError("verification failed: %s missing on the board" % entry["path"])
            if have != (entry["size"], entry["sha256"]):
                raise DeployError("verification failed: %s on the board: sha256 mismatch"
                                  % entry["path"])
        if after[image_check.MANIFEST] != (len(manifest_raw), _sha256(manifest_raw)):
            raise DeployError("verification failed: manifest.json on the board differs "
                              "from the image's")
        left = [p for p in stale if after[p] is not None]
        if left:
            raise DeployError("verification failed: stale %s still on the board" % left[0])
        out = link.run(CHECK_SCRIPT, "the board's image check")
        try:
            passed, detail = ast.literal_eval(out.strip().splitlines()[-1])
        except (ValueError, SyntaxError, IndexError):
            raise DeployError("unexpected answer from the board's image check: %r" % out[-200:])
        if not passed:
            raise DeployError("the board's own image check fails: %s" % detail)
    finally:
        link.close()

    summary = {"changed": len(changed), "unchanged": len(unchanged), "new": len(new),
               "removed": stale_found, "image_sha256": manifest["image_sha256"],
               "files": len(files), "board_check": detail, "development": dev}
    console.print("%d changed, %d unchanged, %d new%s" % (
        len(changed), len(unchanged), len(new),
        (", removed stale " + ", ".join(stale_found)) if stale_found else ""))
    console.print("verified on the board: %d files, image %s (%s, firmware %s); board check: %s"
                  % (len(files), manifest["image_sha256"][:16], manifest["board"],
                     manifest.get("firmware_version", "?"), detail))
    if not dev:
        console.print("reset the board to start the new firmware")
    return summary
