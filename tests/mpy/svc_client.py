"""In-process service client for the portable tests (issue 6): a pump on the sim HAL, and a
technician talking to it through frames, as pumpctl does, cycle by cycle.

Uses the pump's own protocol and auth functions (the host's ``session.py`` is CPython),
so the tests run under MicroPython too.  Not a test module (no ``test_`` prefix).
"""
import binascii
import hashlib
import struct

from firmware import auth as au
from firmware import protocol as p
from firmware.app import PumpApp
from firmware.crc import crc32
from firmware.mac import HmacKey, hmac_sha256
from hal.sim import RamStorage, make_sim_hal
from sim.world import World

_HERE = __file__.replace("\\", "/").rsplit("/", 1)[0] if "/" in __file__ else "."
FIXTURES = _HERE + "/../fixtures/"
TECH_KEY = bytes(range(100, 132))
KEY_SELECT = 2


def read_fixture(name):
    with open(FIXTURES + name, "rb") as f:
        return f.read()


FLEET_KEY = binascii.unhexlify(read_fixture("library_test.key").strip())
LIB = read_fixture("library_small.bin")          # library 42 version 3, AMB-PUMP-1


def resign(data, key=FLEET_KEY, version=None, library_id=None, model=None):
    """A copy of a library with header fields changed, CRC and tag made again."""
    b = bytearray(data)
    if library_id is not None:
        struct.pack_into("<I", b, 28, library_id)
    if version is not None:
        struct.pack_into("<I", b, 32, version)
    if model is not None:
        m = model.encode()
        b[12:28] = m + bytes(16 - len(m))
    body = struct.unpack_from("<I", b, 8)[0]
    struct.pack_into("<I", b, body, crc32(memoryview(b)[:body]))
    b[body + 4:body + 36] = hmac_sha256(key, bytes(b[:body + 4]))
    return bytes(b)


LIB_V4 = resign(LIB, version=4)


def sha256(data):
    return hashlib.sha256(data).digest()


class PumpError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (p.ERROR_NAMES.get(code, code), message))
        self.code = code
        self.message = message


class Bench:
    """A pump on the sim HAL (storage kept across reboots) and a technician's client."""

    def __init__(self, storage=None, cycle_ms=100, serial="SN-TEST-1"):
        self.storage = storage if storage is not None else RamStorage()
        self.cycle_ms = cycle_ms
        self.serial = serial
        self.rid = 0
        self.session_key = None
        self.mac_key = None
        self.seq = 0
        self.boot()

    def boot(self):
        """Power on (again): a new PumpApp on the same storage."""
        self.world = World(seed=2)
        self.hal = make_sim_hal(self.world, cycle_ms=self.cycle_ms, storage=self.storage)
        self.hal.board.SERIAL = self.serial
        self.port = self.hal.service_port
        self.app = PumpApp(self.hal)
        self.app.boot()
        self.decoder = p.FrameDecoder()
        self.session_key = None
        return self.app

    def cycle(self, n=1):
        for _ in range(n):
            self.app.cycle()
            self.world.advance(self.cycle_ms)

    # ---- frames -------------------------------------------------------------------------
    def send(self, code, payload=b""):
        self.rid = (self.rid + 1) & 0xFFFF
        self.port.feed(p.encode_frame(self.rid, code, payload))
        return self.rid

    def replies(self, max_cycles=50):
        """Run cycles until the pump has read everything, return the replies."""
        out = []
        for _ in range(max_cycles):
            self.cycle()
            out.extend(self.decoder.feed(self.port.drain()))
            if not self.port.rx:
                break
        return out

    def request(self, code, payload=b""):
        """The reply payload, or PumpError with the pump's code and message."""
        rid = self.send(code, payload)
        for r in self.replies():
            if isinstance(r, p.FrameError) or r[0] != rid:
                continue
            if r[1] == p.ERROR:
                c, _, message = p.parse_error(r[2])
                raise PumpError(c, message)
            assert r[1] == code | p.REPLY, r
            return r[2]
        raise AssertionError("no reply to 0x%02x" % code)

    def error_of(self, code, payload=b""):
        """(error code, message) of a request that must be refused."""
        try:
            self.request(code, payload)
        except PumpError as e:
            return e.code, e.message
        raise AssertionError("0x%02x was accepted" % code)

    # ---- keys and login ---------------------------------------------------------------------
    def provision(self, tech=TECH_KEY, fleet=FLEET_KEY, press=True):
        self.request(p.KEY_PROVISION, tech + fleet)
        if press:
            self.hal.buttons.press(KEY_SELECT)
        self.cycle(2)
        return self.key_status()

    def key_status(self):
        r = self.request(p.KEY_STATUS)
        flags, prompt, left, failures, lockout, session = struct.unpack_from("<BBHHHB", r, 0)
        return {"flags": flags, "prompt": prompt, "left": left, "failures": failures,
                "lockout": lockout, "session": session}

    def challenge(self):
        r = self.request(p.LOGIN_CHALLENGE)
        nonce = r[:16]
        counter, idle_s = struct.unpack_from("<IH", r, 16)
        return nonce, counter, r[22:]

    def answer_for(self, nonce, counter, serial, key=TECH_KEY):
        return nonce + au.login_answer(key, nonce, serial, counter)

    def login(self, key=TECH_KEY):
        nonce, counter, serial = self.challenge()
        answer = self.answer_for(nonce, counter, serial, key)
        r = self.request(p.LOGIN, answer)
        skey = au.session_key(key, nonce, serial, counter)
        assert r[:16] == au.pump_proof(skey), "pump proof"
        self.session_key = skey
        self.mac_key = HmacKey(skey)
        self.seq = 0
        return answer

    def frame(self, code, body=b""):
        self.seq += 1
        return (struct.pack("<I", self.seq) + body +
                au.write_mac(self.mac_key, code, self.seq, body))

    def write(self, code, body=b""):
        return self.request(code, self.frame(code, body))

    # ---- library load ------------------------------------------------------------------------
    def begin(self, data):
        r = self.write(p.LIBRARY_LOAD, struct.pack("<I", len(data)) + sha256(data))
        have, size, max_chunk, slot = struct.unpack_from("<IIHB", r, 0)
        return have, max_chunk

    def load(self, data, chunk=None, stop_at=None):
        """Begin (or resume), chunks one at a time, commit.  Returns the commit reply
        (library id, version) or raises PumpError.  ``stop_at``: stop sending at that
        byte (an interrupted load) and return None."""
        have, max_chunk = self.begin(data)
        chunk = chunk or max_chunk
        while have < len(data):
            if stop_at is not None and have >= stop_at:
                return None
            r = self.write(p.LIBRARY_CHUNK, struct.pack("<I", have) + data[have:have + chunk])
            have = struct.unpack("<I", r)[0]
        r = self.write(p.LIBRARY_COMMIT, sha256(data))
        return struct.unpack_from("<II", r, 0)

    def active(self):
        """(library id, version) of the pump's active library, or None."""
        lib = self.app.library
        return None if lib is None else (lib.library_id, lib.version)

    def logged(self, etype):
        from firmware import eventlog
        return [r for r in (eventlog.decode(raw) for raw in self.app.log.read(1, 100000))
                if r[1] == etype]


def provisioned_bench(library=None, **kw):
    """A bench with keys provisioned (and ``library`` loaded), logged in."""
    b = Bench(**kw)
    st = b.provision()
    assert st["prompt"] == 2 and st["flags"] == 3, st
    b.login()
    if library is not None:
        b.load(library)
    return b
