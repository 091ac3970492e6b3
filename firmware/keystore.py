"""Service keys and login state on the pump's flash (SR-SVC-2, SR-LIB-2).

Owns two small records in the HAL ``Storage``, each written atomically (a
temporary file, then one rename over the old one: littlefs and POSIX replace
the target in one step) and each ending with a CRC-32, so a power cut leaves
the old record or the new one, never a mix, and damage reads as damage:

``keys.bin`` (76 B)::

    0 "PKEY" | 4 u8 format 1 | 5 u8 flags (1 technician, 2 fleet) | 6 u16 0
    8 technician key 32 | 40 fleet key 32 | 72 CRC-32 of bytes 0..71

``auth.bin`` (16 B)::

    0 "PAUT" | 4 u32 login counter reserved | 8 u32 failed logins in a row | 12 CRC-32

The login counter is monotonic across power cycles without a flash write per
login: the record holds the highest counter that may have been issued
(``COUNTER_BLOCK`` ahead); after a reboot counting resumes above it.

Keys never leave the pump over the link; only fingerprints (first 8 hex digits
of their SHA-256) do.  Also the record helpers ``write_record`` / ``read_record``
the library store uses.  Portable (MicroPython + CPython).
"""
import struct

from firmware.crc import crc32

KEY_SIZE = 32
KEYS_FILE = "keys.bin"
AUTH_FILE = "auth.bin"
KEYS_MAGIC = b"PKEY"
AUTH_MAGIC = b"PAUT"
KEYS_FORMAT = 1
TECH = 1                       # flag bits: which keys are set
FLEET = 2
COUNTER_BLOCK = 32             # login counters reserved per flash write


class RecordError(Exception):
    """A record file that exists but cannot be trusted; the message says why."""


def write_record(storage, name, magic, payload):
    """magic | payload | CRC-32 written to ``name`` atomically (temporary file + rename)."""
    data = bytearray(magic)
    data.extend(payload)
    data.extend(struct.pack("<I", crc32(data)))
    tmp = name + ".tmp"
    f = storage.open(tmp, "wb")
    try:
        f.write(data)
        f.flush()
    finally:
        f.close()
    storage.rename(tmp, name)


def read_record(storage, name, magic, payload_size):
    """The payload of a record file; None when the file does not exist.

    Raises RecordError when it exists but is short, long, of another kind or
    fails its CRC."""
    if not storage.exists(name):
        return None
    size = 4 + payload_size + 4
    f = storage.open(name, "rb")
    try:
        data = f.read(size + 1)
    finally:
        f.close()
    if len(data) != size:
        raise RecordError("%s is %d bytes, expected %d" % (name, len(data), size))
    if data[:4] != magic:
        raise RecordError("%s is not a %s record" % (name, magic.decode()))
    if struct.unpack_from("<I", data, size - 4)[0] != crc32(memoryview(data)[:size - 4]):
        raise RecordError("%s fails its CRC: damaged" % name)
    return data[4:size - 4]


class KeyStore:
    """The technician key, the fleet key and the login counters of one pump.

    ``status`` is "ok", "empty" (no keys yet: the first keys need the on-pump
    confirmation) or "damaged: ..." (treated as empty, and reported)."""

    def __init__(self, storage):
        self.storage = storage
        self.tech_key = None
        self.fleet_key = None
        self.status = "empty"
        self.counter = 0              # last login counter issued
        self.reserved = 0             # highest counter the flash record allows
        self.failures = 0             # failed logins in a row (persisted)
        self.auth_status = "empty"
        self._load()

    def _load(self):
        try:
            payload = read_record(self.storage, KEYS_FILE, KEYS_MAGIC, 2 * KEY_SIZE + 4)
            if payload is not None:
                fmt, flags = payload[0], payload[1]
                if fmt != KEYS_FORMAT:
                    raise RecordError("%s format %d unsupported" % (KEYS_FILE, fmt))
                if flags & TECH:
                    self.tech_key = bytes(payload[4:4 + KEY_SIZE])
                if flags & FLEET:
                    self.fleet_key = bytes(payload[4 + KEY_SIZE:4 + 2 * KEY_SIZE])
                self.status = "ok"
        except (RecordError, OSError) as e:
            self.tech_key = self.fleet_key = None
            self.status = "damaged: %s" % (e,)
        try:
            payload = read_record(self.storage, AUTH_FILE, AUTH_MAGIC, 8)
            if payload is not None:
                self.reserved, self.failures = struct.unpack("<II", payload)
                self.counter = self.reserved
                self.auth_status = "ok"
        except (RecordError, OSError) as e:
            # counters lost: start above any plausible earlier value, fail closed
            self.reserved = self.counter = 0x10000000
            self.failures = 0
            self.auth_status = "damaged: %s" % (e,)

    # ---- keys --------------------------------------------------------------------------
    def provisioned(self):
        return self.tech_key is not None

    def flags(self):
        return (TECH if self.tech_key is not None else 0) | (
            FLEET if self.fleet_key is not None else 0)

    def store(self, tech_key=None, fleet_key=None):
        """Replace the given keys (None keeps the current one), atomically."""
        for k in (tech_key, fleet_key):
            if k is not None and len(k) != KEY_SIZE:
                raise ValueError("a key is %d bytes, not %d" % (KEY_SIZE, len(k)))
        tech = tech_key if tech_key is not None else self.tech_key
        fleet = fleet_key if fleet_key is not None else self.fleet_key
        flags = (TECH if tech is not None else 0) | (FLEET if fleet is not None else 0)
        payload = bytearray(4 + 2 * KEY_SIZE)
        payload[0] = KEYS_FORMAT
        payload[1] = flags
        if tech is not None:
            payload[4:4 + KEY_SIZE] = tech
        if fleet is not None:
            payload[4 + KEY_SIZE:4 + 2 * KEY_SIZE] = fleet
        write_record(self.storage, KEYS_FILE, KEYS_MAGIC, payload)
        self.tech_key = tech
        self.fleet_key = fleet
        self.status = "ok"

    def fingerprints(self):
        """(technician, fleet) fingerprints, "" for a key not set."""
        from firmware.mac import fingerprint
        return (fingerprint(self.tech_key) if self.tech_key is not None else "",
                fingerprint(self.fleet_key) if self.fleet_key is not None else "")

    # ---- login counter and failures ---------------------------------------------------------
    def _save_auth(self):
        write_record(self.storage, AUTH_FILE, AUTH_MAGIC,
                     struct.pack("<II", self.reserved, self.failures))
        self.auth_status = "ok"

    def next_login_counter(self):
        """A login counter never issued before, on this pump, across power cycles."""
        if self.counter >= self.reserved:
            self.reserved = self.counter + COUNTER_BLOCK
            self._save_auth()            # before the counter is used
        self.counter += 1
        return self.counter

    def login_failed(self):
        self.failures += 1
        self._save_auth()
        return self.failures

    def login_succeeded(self):
        if self.failures:
            self.failures = 0
            self._save_auth()
