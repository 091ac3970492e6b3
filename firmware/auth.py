"""Technician login and write authentication on the service link (SR-SVC-2).

Owns the pump's side of the challenge-response login, the session that
follows it, and the on-pump confirmation of the first keys.  Described for
technicians and host-tool authors in ``docs/SERVICE_LINK.md``.

Login::

    pump -> host   nonce (16 B from os.urandom) | u32 counter | serial
    host -> pump   nonce | HMAC-SHA256(tech key, LOGIN_TAG | nonce | serial | u32 counter)
    pump -> host   HMAC-SHA256(session key, PUMP_TAG)[:16] | u16 idle timeout s
    session key  = HMAC-SHA256(tech key, SESSION_TAG | nonce | serial | u32 counter)

A challenge is single-use (any answer consumes it) and expires after
``CHALLENGE_MS``; the counter is persisted (``firmware/keystore.py``) and never
repeats, so an answer captured once is worthless later.  Failed answers are
counted, persisted and logged; from ``FREE_FAILURES`` in a row the pump locks
logins out for a time that doubles with each further failure.

Every write frame after a login carries ``u32 sequence | body | MAC`` where the
MAC is the first 16 bytes of HMAC-SHA256(session key, WRITE_TAG | u8 code |
u32 sequence | body) and the sequence is strictly increasing: a write captured
and sent again is refused (same session: "replayed frame"; another session:
the MAC does not match).  The session ends after ``IDLE_MS`` of pump time
without a write, on LOGOUT, or when a new login succeeds.

There is no predictable random source anywhere here: without ``os.urandom``
the pump refuses logins.  Portable (MicroPython + CPython).
"""
import struct

try:
    from os import urandom
except ImportError:  # pragma: no cover - a port without a hardware RNG
    urandom = None

from firmware.mac import HmacKey, equal_digest, hmac_sha256

NONCE_SIZE = 16
ANSWER_SIZE = 32
PROOF_SIZE = 16
MAC_SIZE = 16
SEQ_SIZE = 4
WRITE_OVERHEAD = SEQ_SIZE + MAC_SIZE
LOGIN_TAG = b"AMBP login v1"
SESSION_TAG = b"AMBP session v1"
PUMP_TAG = b"AMBP pump v1"
WRITE_TAG = b"AMBP write v1"
WRAP_TAG = b"AMBP key wrap v1"
CHALLENGE_MS = 60000           # an unanswered challenge expires
IDLE_MS = 300000               # a session ends after 5 min of pump time without a write
FREE_FAILURES = 3              # failed logins in a row before the first lockout
LOCKOUT_FIRST_S = 10           # then 10 s, 20 s, 40 s, ... up to LOCKOUT_MAX_S
LOCKOUT_MAX_S = 3600

# reasons a write or login is refused (messages built from these in service.py)
OK = 0
NO_SESSION = 1
EXPIRED = 2
BAD_MAC = 3
REPLAYED = 4
SHORT = 5


def lockout_s(failures):
    """Seconds logins stay locked after ``failures`` failed logins in a row."""
    if failures < FREE_FAILURES:
        return 0
    s = LOCKOUT_FIRST_S
    for _ in range(failures - FREE_FAILURES):
        s *= 2
        if s >= LOCKOUT_MAX_S:
            return LOCKOUT_MAX_S
    return s


def login_answer(tech_key, nonce, serial, counter):
    """What the host answers to a challenge (also used by pumpctl)."""
    return hmac_sha256(tech_key, LOGIN_TAG + bytes(nonce) + serial + struct.pack("<I", counter))


def session_key(tech_key, nonce, serial, counter):
    return hmac_sha256(tech_key, SESSION_TAG + bytes(nonce) + serial + struct.pack("<I", counter))


def pump_proof(skey):
    return hmac_sha256(skey, PUMP_TAG)[:PROOF_SIZE]


def write_mac(mac_key, code, seq, body):
    """MAC of one write frame under a session's ``HmacKey``."""
    return mac_key.mac(WRITE_TAG, bytes((code,)), struct.pack("<I", seq), body)[:MAC_SIZE]


def wrap(skey, seq, data):
    """XOR ``data`` (at most 64 B) with a keystream from the session key and the frame's
    sequence number: new keys cross the link only wrapped (involution: wrap = unwrap)."""
    stream = (hmac_sha256(skey, WRAP_TAG + struct.pack("<IB", seq, 0)) +
              hmac_sha256(skey, WRAP_TAG + struct.pack("<IB", seq, 1)))
    if len(data) > len(stream):
        raise ValueError("wrap: at most %d bytes" % len(stream))
    out = bytearray(len(data))
    for i in range(len(data)):
        out[i] = data[i] ^ stream[i]
    return bytes(out)


class Session:
    """One logged-in technician: the session key and the last sequence number."""

    def __init__(self, skey, counter, now_ms):
        self.key = skey
        self.mac_key = HmacKey(skey)
        self.counter = counter
        self.last_seq = 0
        self.last_ms = now_ms
        self.writes = 0


class Authenticator:
    """Challenges, answers, lockout and the current session of one pump."""

    def __init__(self, keys, serial, clock):
        self.keys = keys                 # firmware.keystore.KeyStore
        self.serial = serial             # bytes
        self.clock = clock
        self.challenge = None            # (nonce, counter, issued_ms)
        self.session = None
        # after a reboot the lockout earned before it runs again in full
        self.locked_until_ms = clock.ticks_ms() + lockout_s(keys.failures) * 1000

    # ---- login -----------------------------------------------------------------------
    def lockout_left_s(self):
        left = self.locked_until_ms - self.clock.ticks_ms()
        return (left + 999) // 1000 if left > 0 else 0

    def new_challenge(self):
        """(nonce, counter) of a fresh single-use challenge.  Raises ValueError with the
        reason when no login is possible (no key, locked out, no random source)."""
        if not self.keys.provisioned():
            raise ValueError("no technician key on this pump: provision keys first "
                             "(pumpctl key provision)")
        left = self.lockout_left_s()
        if left:
            raise ValueError("locked out for %d s after %d failed logins" %
                             (left, self.keys.failures))
        if urandom is None:
            raise ValueError("no hardware random source: logins impossible")
        nonce = urandom(NONCE_SIZE)
        counter = self.keys.next_login_counter()
        self.challenge = (nonce, counter, self.clock.ticks_ms())
        return nonce, counter

    def answer(self, nonce, answer):
        """Check the answer to the outstanding challenge.

        Returns (True, session) or (False, message, counted): ``counted`` says the
        attempt was a failed login (logged, counts towards the lockout)."""
        ch = self.challenge
        now = self.clock.ticks_ms()
        if ch is None:
            return (False, "no login challenge outstanding (each is single-use): "
                    "ask for a new one", False)
        self.challenge = None             # single use, whatever the answer
        if now - ch[2] > CHALLENGE_MS:
            return (False, "login challenge expired after %d s: ask for a new one"
                    % (CHALLENGE_MS // 1000), False)
        left = self.lockout_left_s()
        if left:
            return (False, "locked out for %d s after %d failed logins" %
                    (left, self.keys.failures), False)
        tech = self.keys.tech_key
        if tech is None:
            return (False, "no technician key on this pump", False)
        expected = login_answer(tech, ch[0], self.serial, ch[1])
        if not equal_digest(bytes(nonce), ch[0]) or not equal_digest(answer, expected):
            failures = self.keys.login_failed()
            wait = lockout_s(failures)
            self.locked_until_ms = now + wait * 1000
            msg = "login failed: wrong technician key, or an answer to another challenge " \
                  "(%d failed in a row" % failures
            if wait:
                msg += "; locked out for %d s)" % wait
            else:
                msg += "; lockout after %d)" % FREE_FAILURES
            return (False, msg, True)
        self.keys.login_succeeded()
        self.locked_until_ms = now
        self.session = Session(session_key(tech, ch[0], self.serial, ch[1]), ch[1], now)
        return (True, self.session)

    # ---- writes ----------------------------------------------------------------------------
    def expired(self):
        """True when there is a session and it has been idle too long."""
        s = self.session
        return s is not None and self.clock.ticks_ms() - s.last_ms > IDLE_MS

    def check_write(self, code, payload):
        """(reason, seq, body) for a write frame's payload; reason OK when accepted.

        On OK the sequence number is consumed and the session's idle time restarts."""
        s = self.session
        if s is None:
            return NO_SESSION, 0, None
        if self.expired():
            return EXPIRED, 0, None
        n = len(payload)
        if n < WRITE_OVERHEAD:
            return SHORT, 0, None
        mv = memoryview(payload)
        seq = struct.unpack_from("<I", payload, 0)[0]
        body = bytes(mv[SEQ_SIZE:n - MAC_SIZE])
        if not equal_digest(write_mac(s.mac_key, code, seq, body), mv[n - MAC_SIZE:]):
            return BAD_MAC, seq, None
        if seq <= s.last_seq:
            return REPLAYED, seq, None
        s.last_seq = seq
        s.last_ms = self.clock.ticks_ms()
        s.writes += 1
        return OK, seq, body

    def end_session(self):
        s = self.session
        self.session = None
        return s

