"""The pump's drug libraries on flash: two slots, one selector, atomic switch (SR-LIB-2/3).

Owns which library is active and how a new one replaces it.  Files in the HAL
``Storage``::

    lib_a.bin, lib_b.bin   the two slots: compiled libraries, byte for byte
    lib_sel.bin            selector record (firmware/keystore.py record format):
                           u8 slot | 3 x 0 | u32 library id | u32 version | u32 size
    lib_load.bin           a load in progress: u8 slot | 3 x 0 | u32 size | sha256 32

A load writes the *inactive* slot chunk by chunk (the record of the load in
progress lets a later load of the same file resume where this one stopped,
even after a reboot), then verifies what is on flash with
``firmware.druglib.verify`` (CRC-32, HMAC-SHA256 tag with the provisioned
fleet key, schema version, layout, model) reading it back in 512-byte chunks,
and only then switches with one atomic write: the selector, replaced by a
rename.  A power cut at any byte leaves the selector naming the old library
(or none) or the new one; the slot it names is never the one being written.
On any failure the old library stays active and the reason is logged
(LIBRARY_REJECTED) and raised as ``StoreError``.

At boot ``open_active`` verifies the selected slot the same way and opens it
for look-ups (``druglib.Library`` reads records by seeking: the library is
never held on the heap); a damaged selector or slot gives no library, logged,
never an exception.  ``firmware.druglib`` is imported only when there is a
library to open or load (PT-8: a pump without one does not carry it).
Portable (MicroPython + CPython).
"""
import struct

from firmware import events
from firmware.keystore import RecordError, read_record, write_record

SLOTS = ("lib_a.bin", "lib_b.bin")
SELECTOR = "lib_sel.bin"
SELECTOR_MAGIC = b"LSEL"
SELECTOR_FMT = "<BBBBIII"           # slot, 0, 0, 0, library id, version, size
PROGRESS = "lib_load.bin"
PROGRESS_MAGIC = b"LLOD"
PROGRESS_FMT = "<BBBBI"             # slot, 0, 0, 0, size; then the sha256
DIGEST_SIZE = 32
MIN_SIZE = 80 + 4 + 32              # druglib: header + CRC + tag

# LIBRARY_REJECTED reasons (event argument a)
R_LIBRARY = 1           # druglib.verify refused it; the message says why
R_CRC = 2
R_TAG = 3
R_MODEL = 4
R_SCHEMA = 5
R_TRUNCATED = 6
R_NO_FLEET_KEY = 7
R_SELECTOR = 8          # selector record damaged
R_MISMATCH = 9          # the slot does not hold the library the selector names
R_STORAGE = 10          # the flash failed while reading
_REASONS = (("CRC mismatch", R_CRC), ("authentication tag", R_TAG), ("model ", R_MODEL),
            ("schema version", R_SCHEMA), ("truncated", R_TRUNCATED),
            ("longer than", R_TRUNCATED), ("length field", R_TRUNCATED))


class StoreError(Exception):
    """A load step the pump refuses; ``reason`` is an R_* code, ``refused`` False when
    it is a usage problem (nothing to resume, offsets) rather than the library."""

    def __init__(self, message, reason=0, refused=True):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.refused = refused


def reason_code(message):
    for text, code in _REASONS:
        if message.startswith(text):
            return code
    return R_LIBRARY


class _Load:
    """A load in progress: the inactive slot being written."""

    def __init__(self, slot, size, digest, received, f):
        self.slot = slot
        self.size = size
        self.digest = digest
        self.received = received
        self.f = f


class LibraryStore:
    """The A/B library slots of one pump."""

    def __init__(self, storage, keys, log, model):
        self.storage = storage
        self.keys = keys                 # firmware.keystore.KeyStore (fleet key)
        self.log = log
        self.model = model
        self.active_slot = -1
        self.active = None               # druglib.Library of the active slot
        self._file = None                # its open file
        self.load = None                 # _Load in progress
        self.last_error = ""
        self.last_digest = None          # sha256 of the last committed load (retried commit)

    # ---- boot ----------------------------------------------------------------------------
    def open_active(self):
        """Verify and open the selected library; None (logged) when there is none usable."""
        try:
            return self._open_active()
        except Exception as e:           # never a crash at boot: no library, logged
            self._close_active()
            self._reject(R_STORAGE, 0, "active library unreadable: %s" % (e,))
            return None

    def _open_active(self):
        self._close_active()
        try:
            sel = read_record(self.storage, SELECTOR, SELECTOR_MAGIC, 16)
        except RecordError as e:
            self._reject(R_SELECTOR, 0, "library selector damaged (%s): no library" % (e,))
            return None
        if sel is None:
            self.last_error = "no library loaded"
            return None
        slot, _, _, _, lib_id, version, size = struct.unpack(SELECTOR_FMT, sel)
        if slot > 1:
            self._reject(R_SELECTOR, lib_id, "library selector names slot %d" % slot)
            return None
        key = self.keys.fleet_key
        if key is None:
            self._reject(R_NO_FLEET_KEY, lib_id,
                         "no fleet key provisioned: library %d cannot be checked" % lib_id)
            return None
        from firmware import druglib as dl
        f = self.storage.open(SLOTS[slot], "rb")
        try:
            h = dl.verify(f, key, self.model)
            if (h.library_id, h.version, h.total_size) != (lib_id, version, size):
                raise StoreError("slot %s holds library %d v%d (%d B), the selector names "
                                 "%d v%d (%d B)" % (SLOTS[slot], h.library_id, h.version,
                                                    h.total_size, lib_id, version, size),
                                 R_MISMATCH)
            lib = dl.Library(f)
        except dl.LibraryError as e:
            f.close()
            msg = str(e)
            self._reject(reason_code(msg), lib_id, "active library %d v%d refused: %s"
                         % (lib_id, version, msg))
            return None
        except StoreError as e:
            f.close()
            self._reject(e.reason, lib_id, e.message)
            return None
        except Exception:
            f.close()
            raise
        self.active_slot = slot
        self.active = lib
        self._file = f
        self.last_error = ""
        return lib

    def _close_active(self):
        f = self._file
        self._file = None
        self.active = None
        self.active_slot = -1
        if f is not None:
            try:
                f.close()
            except Exception:
                pass

    def _reject(self, reason, lib_id, message):
        self.last_error = message
        try:
            self.log.append(events.LIBRARY_REJECTED, reason, lib_id)
        except Exception:
            pass                           # the log's own failure is not this one

    # ---- load ------------------------------------------------------------------------------
    def begin(self, size, digest):
        """Start (or resume) loading a library of ``size`` bytes identified by ``digest``
        (its sha256) into the inactive slot.  Returns the bytes already held."""
        from firmware import druglib as dl
        if not MIN_SIZE <= size <= dl.MAX_LIBRARY_BYTES:
            raise StoreError("library of %d bytes: a slot takes %d..%d" %
                             (size, MIN_SIZE, dl.MAX_LIBRARY_BYTES), R_TRUNCATED)
        if self.keys.fleet_key is None:
            raise StoreError("no fleet key provisioned: the pump cannot check a library "
                             "(pumpctl key provision)", R_NO_FLEET_KEY)
        load = self.load
        if load is not None and load.size == size and load.digest == digest:
            return load.received          # the same file again: carry on
        self._drop_load()
        resumed = self._resume_after_reboot(size, digest)
        if resumed is not None:
            return resumed
        slot = 1 - self.active_slot if self.active_slot >= 0 else 0
        write_record(self.storage, PROGRESS, PROGRESS_MAGIC,
                     struct.pack(PROGRESS_FMT, slot, 0, 0, 0, size) + bytes(digest))
        f = self.storage.open(SLOTS[slot], "wb")
        self.load = _Load(slot, size, bytes(digest), 0, f)
        return 0

    def _resume_after_reboot(self, size, digest):
        """The bytes of this file already in the inactive slot from before a reboot."""
        try:
            rec = read_record(self.storage, PROGRESS, PROGRESS_MAGIC, 8 + DIGEST_SIZE)
        except RecordError:
            return None
        if rec is None:
            return None
        slot, _, _, _, rsize = struct.unpack_from(PROGRESS_FMT, rec, 0)
        if (slot > 1 or slot == self.active_slot or rsize != size or
                bytes(rec[8:8 + DIGEST_SIZE]) != bytes(digest)):
            return None
        name = SLOTS[slot]
        have = self.storage.size(name) if self.storage.exists(name) else 0
        if have > size:
            return None
        f = self.storage.open(name, "ab")
        self.load = _Load(slot, size, bytes(digest), have, f)
        return have

    def chunk(self, offset, data):
        """Write ``data`` at ``offset`` of the load in progress; returns the bytes held.

        A chunk already held is ignored and one after a gap is not written: the
        reply's count tells the host where to go on from."""
        load = self.load
        if load is None:
            raise StoreError("no library load in progress: begin one first", refused=False)
        if offset != load.received:
            return load.received
        if offset + len(data) > load.size:
            raise StoreError("chunk at %d (+%d) runs past the %d bytes announced"
                             % (offset, len(data), load.size), refused=False)
        load.f.write(data)
        load.f.flush()
        load.received += len(data)
        return load.received

    def commit(self, digest):
        """Verify the slot just written and switch to it; returns the new Library.

        Raises StoreError (logged LIBRARY_REJECTED when the library is refused);
        the old library stays active on every failure."""
        load = self.load
        if load is None:
            if self.active is not None and self.last_digest == bytes(digest):
                return self.active        # a commit retried after its reply was lost
            raise StoreError("no library load in progress: nothing to commit", refused=False)
        if load.digest != bytes(digest):
            raise StoreError("commit names another file than the one being loaded",
                             refused=False)
        if load.received != load.size:
            raise StoreError("only %d of %d bytes received: send the rest first"
                             % (load.received, load.size), refused=False)
        self.load = None
        load.f.close()
        from firmware import druglib as dl
        name = SLOTS[load.slot]
        key = self.keys.fleet_key
        f = self.storage.open(name, "rb")
        try:
            h = dl.verify(f, key, self.model)
        except dl.LibraryError as e:
            f.close()
            self._discard(load)
            msg = str(e)
            self._reject(reason_code(msg), 0, msg)
            raise StoreError("library refused, the previous one stays active: " + msg,
                             reason_code(msg))
        except Exception:
            f.close()
            raise
        try:
            lib = dl.Library(f)
        except Exception:
            f.close()
            raise
        # the switch: no resume of this load after here, then one atomic write
        try:
            if self.storage.exists(PROGRESS):
                self.storage.remove(PROGRESS)
            write_record(self.storage, SELECTOR, SELECTOR_MAGIC,
                         struct.pack(SELECTOR_FMT, load.slot, 0, 0, 0, h.library_id,
                                     h.version, h.total_size))
        except OSError as e:
            f.close()
            self._reject(R_STORAGE, h.library_id, "flash write failed: %s" % (e,))
            raise StoreError("flash write failed while switching (%s): the previous library "
                             "stays active" % (e,), R_STORAGE)
        old = self._file
        self.active = lib
        self._file = f
        self.active_slot = load.slot
        self.last_digest = load.digest
        self.last_error = ""
        if old is not None:
            old.close()
        self.log.append(events.LIBRARY_LOADED, h.library_id, h.version)
        return lib

    def _discard(self, load):
        """Forget a refused load: its record and its slot's bytes (flash is scarce)."""
        for name in (PROGRESS, SLOTS[load.slot]):
            if self.storage.exists(name):
                self.storage.remove(name)

    def _drop_load(self):
        load = self.load
        self.load = None
        if load is not None:
            try:
                load.f.close()
            except Exception:
                pass

    def abort(self):
        """Give up the load in progress (it can still be resumed by a later begin)."""
        self._drop_load()

    def reopen_active(self):
        """Check the active library again (the fleet key changed); returns it or None."""
        self._drop_load()
        return self.open_active()
