"""The technician's side of the service link (SR-SVC-2, SR-LIB-3): keys, login, writes.

Owns everything ``firmware/service.py`` does not answer itself, as functions of the
``ServiceServer`` (``srv``), imported on the first frame that needs them so that a
pump nobody services never loads this code (PT-8):

* KEY_STATUS, LIBRARY_INFO: open reads (fingerprints, never keys).
* KEY_PROVISION: the first keys, only while the pump has none, stored when SELECT
  is pressed on the pump within ``CONFIRM_MS`` of the prompt, refused otherwise.
* LOGIN_CHALLENGE / LOGIN: ``firmware/auth.py``; a failed answer is logged
  (SERVICE_LOGIN 0, and SERVICE_LOCKOUT when it starts a lockout) and counts
  towards the lockout; a good one opens a session (SERVICE_LOGIN 1, LOW alarm
  SERVICE SESSION while it lasts).
* Writes: refused with NOT_AUTHORISED and a message ("log in first", "session
  expired", "replayed frame", "frame MAC mismatch") unless ``auth.check_write``
  accepts the frame; then run and logged (SERVICE_COMMAND code, result), except
  the chunks of a library load, whose begin and commit are logged.
* The library load: LIBRARY_LOAD (begin/resume) -> LIBRARY_CHUNK ... ->
  LIBRARY_COMMIT through ``firmware/library_store.py``; refused while a therapy
  is in progress; after a commit ``app.set_library`` gets the new library.
  Every refusal of the library itself is logged LIBRARY_REJECTED (reason, id):
  by the store for what it verifies, here for a LIBRARY_LOAD refused before any
  byte (size, no fleet key) and a commit whose slot cannot be read back.
* Every error reply, whatever else is logged, is also counted in the
  rate-limited SERVICE_FRAME_REJECTED records (``ServiceServer._rejected``).

Reply formats: ``docs/SERVICE_LINK.md``.  Portable (MicroPython + CPython).
"""
import struct

from firmware import alarms as al
from firmware import auth as au
from firmware import events
from firmware import protocol as p
from firmware.library_store import R_STORAGE, StoreError
from firmware.mac import fingerprint
from firmware.alarms import PRIORITY_LOW
from firmware.service import MODEL, therapy_active
import safety_core as sc

# KEY_PROVISION prompt states (KEY_STATUS)
KP_NONE = 0
KP_WAITING = 1
KP_ACCEPTED = 2
KP_EXPIRED = 3
CONFIRM_MS = 30000
# a library chunk: the largest frame payload minus the write envelope and the offset
MAX_CHUNK = p.MAX_BODY - p.HEADER - p.TRAILER - au.WRITE_OVERHEAD - 4

_WRITE_NAMES = {p.LIBRARY_LOAD: "LIBRARY_LOAD", p.CONFIG_SET: "CONFIG_SET",
                p.CLOCK_SET: "CLOCK_SET", p.CALIBRATION_SET: "CALIBRATION_SET",
                p.LIBRARY_CHUNK: "LIBRARY_CHUNK", p.LIBRARY_COMMIT: "LIBRARY_COMMIT",
                p.KEY_CHANGE: "KEY_CHANGE", p.LOGOUT: "LOGOUT"}
EXPIRED_MSG = "session expired (no write for %d min): log in again" % (au.IDLE_MS // 60000)


def _now(srv):
    return srv.app.hal.clock.ticks_ms()


def _fail(srv, request_id, err, message):
    srv._error(request_id, err, message)
    return err


def dispatch(srv, request_id, code, payload):
    if code == p.KEY_STATUS:
        key_status(srv, request_id)
    elif code == p.LIBRARY_INFO:
        library_info(srv, request_id)
    elif code == p.LOGIN_CHALLENGE:
        challenge(srv, request_id)
    elif code == p.LOGIN:
        login(srv, request_id, payload)
    elif code == p.KEY_PROVISION:
        provision(srv, request_id, payload)
    elif code in p.WRITE_COMMANDS:
        write(srv, request_id, code, payload)
    else:
        srv._error(request_id, p.E_UNKNOWN_COMMAND, "unknown command 0x%02x" % code)


def tick(srv):
    """Every cycle while a key prompt is up or a session is open."""
    if srv.pending_keys is not None:
        _confirm_tick(srv)
    auth = srv.auth
    if auth is not None and auth.session is not None and auth.expired():
        end_session(srv, 1)
        srv.session_timed_out = True


# ---- keys: status and the first provisioning ----------------------------------------------
def key_status(srv, request_id):
    keys = srv.keys
    flags = keys.flags() if keys is not None else 0
    tech_fp, fleet_fp = keys.fingerprints() if keys is not None else ("", "")
    left = 0
    if srv.pending_keys is not None:
        left = max(0, (srv.pending_keys[2] - _now(srv) + 999) // 1000)
    auth = srv.auth
    if auth is None and keys is not None and keys.failures:
        auth = _authenticator(srv)         # a lockout earned before a reboot still runs
    lockout = auth.lockout_left_s() if auth is not None else 0
    failures = keys.failures if keys is not None else 0
    session = 1 if auth is not None and auth.session is not None else 0
    status = keys.status if keys is not None else "no key store"
    payload = struct.pack("<BBHHHB8s8s", flags, srv.key_prompt, left, failures, lockout,
                          session, tech_fp.encode(), fleet_fp.encode()) + status.encode()
    srv._reply(request_id, p.KEY_STATUS, payload)


def provision(srv, request_id, payload):
    keys = srv.keys
    if keys is None or srv.confirm is None:
        return _fail(srv, request_id, p.E_UNKNOWN_COMMAND, "this pump has no key store")
    if len(payload) != 64:
        return _fail(srv, request_id, p.E_BAD_ARGS, "KEY_PROVISION takes a 32-byte "
                     "technician key and a 32-byte fleet key (%d bytes given)" % len(payload))
    if keys.provisioned():
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, "keys already provisioned: change "
                     "them after a login (pumpctl key change)")
    if therapy_active(srv.app.core.phase):
        return _fail(srv, request_id, p.E_BUSY, "keys cannot be provisioned while infusing")
    if srv.app.alarms.top_priority() > PRIORITY_LOW:   # SELECT belongs to the alarm
        return _fail(srv, request_id, p.E_BUSY, "keys cannot be provisioned while an alarm "
                     "is active on the pump: clear it first")
    if srv.pending_keys is not None:
        return _fail(srv, request_id, p.E_BUSY, "a key confirmation is already waiting on "
                     "the pump: press SELECT there or wait for it to expire")
    tech = bytes(payload[:32])
    fleet = bytes(payload[32:])
    if tech == fleet:
        return _fail(srv, request_id, p.E_BAD_ARGS, "technician and fleet keys must differ")
    srv.pending_keys = (tech, fleet, _now(srv) + CONFIRM_MS)
    srv.key_prompt = KP_WAITING
    srv.confirm.prompt(["SERVICE KEYS", "Accept new keys?", "tech  " + fingerprint(tech),
                        "fleet " + fingerprint(fleet), "SELECT: accept",
                        "wait %d s: refuse" % (CONFIRM_MS // 1000)])
    srv._reply(request_id, p.KEY_PROVISION, struct.pack("<BH", KP_WAITING, CONFIRM_MS // 1000))


def _confirm_tick(srv):
    tech, fleet, deadline = srv.pending_keys
    if srv.confirm.pressed:
        srv.pending_keys = None
        srv.confirm.done()
        srv.key_prompt = KP_EXPIRED           # unless stored
        srv.keys.store(tech, fleet)
        srv.key_prompt = KP_ACCEPTED
        srv.log.append(events.KEYS_CHANGED, 3, 1)
        if srv.libraries is not None and srv.libraries.active is None:
            srv.app.set_library(srv.libraries.reopen_active())
    elif _now(srv) - deadline >= 0:
        srv.pending_keys = None
        srv.confirm.done()
        srv.key_prompt = KP_EXPIRED
        srv.log.append(events.SERVICE_COMMAND, p.KEY_PROVISION, p.E_NOT_AUTHORISED)


# ---- login ----------------------------------------------------------------------------------
def _authenticator(srv):
    if srv.auth is None:
        srv.auth = au.Authenticator(srv.keys, srv.serial.encode(), srv.app.hal.clock)
    return srv.auth


def challenge(srv, request_id):
    if srv.keys is None:
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, "this pump has no key store")
    try:
        nonce, counter = _authenticator(srv).new_challenge()
    except ValueError as e:
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, str(e))
    srv._reply(request_id, p.LOGIN_CHALLENGE,
               nonce + struct.pack("<IH", counter, au.IDLE_MS // 1000) + srv.serial.encode())


def login(srv, request_id, payload):
    if srv.keys is None:
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, "this pump has no key store")
    if len(payload) != au.NONCE_SIZE + au.ANSWER_SIZE:
        return _fail(srv, request_id, p.E_BAD_ARGS, "LOGIN takes the 16-byte nonce and the "
                     "32-byte answer (%d bytes given)" % len(payload))
    auth = _authenticator(srv)
    previous = auth.session
    result = auth.answer(payload[:au.NONCE_SIZE], payload[au.NONCE_SIZE:])
    if not result[0]:
        if result[2]:
            failures = srv.keys.failures
            srv.log.append(events.SERVICE_LOGIN, 0, failures)
            wait = au.lockout_s(failures)
            if wait:
                srv.log.append(events.SERVICE_LOCKOUT, wait, failures)
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, result[1])
    session = result[1]
    if previous is not None:
        srv.log.append(events.SERVICE_LOGOUT, 2, previous.writes)
    srv.session_timed_out = False
    srv.log.append(events.SERVICE_LOGIN, 1, session.counter)
    srv.app.alarms.raise_alarm(al.SERVICE_SESSION, _now(srv))
    srv._reply(request_id, p.LOGIN, au.pump_proof(session.key) +
               struct.pack("<HI", au.IDLE_MS // 1000, session.counter))


def end_session(srv, why):
    session = srv.auth.end_session()
    if session is not None:
        srv.log.append(events.SERVICE_LOGOUT, why, session.writes)
        srv.app.alarms.cause_gone(al.SERVICE_SESSION)


# ---- writes -----------------------------------------------------------------------------------
def write(srv, request_id, code, payload):
    auth = srv.auth
    if auth is None or auth.session is None:
        if srv.session_timed_out:
            msg = EXPIRED_MSG
        else:
            msg = "log in first: %s is a write and needs a technician login" % (
                _WRITE_NAMES.get(code, "0x%02x" % code))
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, msg)
    reason, seq, body = auth.check_write(code, payload)
    if reason != au.OK:
        if reason == au.EXPIRED:
            end_session(srv, 1)
            srv.session_timed_out = True
            msg = EXPIRED_MSG
        elif reason == au.SHORT:
            msg = "write frame of %d bytes: a write is u32 sequence + body + 16-byte MAC" \
                  % len(payload)
        elif reason == au.BAD_MAC:
            msg = "frame MAC mismatch: altered, or replayed from another session"
        else:
            msg = "replayed frame: sequence %d not above %d" % (seq, auth.session.last_seq)
        return _fail(srv, request_id, p.E_NOT_AUTHORISED, msg)
    if code == p.LIBRARY_CHUNK:
        _library_chunk(srv, request_id, body)
        return
    result = _execute(srv, request_id, code, seq, body)
    srv.log.append(events.SERVICE_COMMAND, code, result)


def _execute(srv, request_id, code, seq, body):
    """Run one authenticated write; returns 0 or the error code it replied with."""
    if code == p.LOGOUT:
        srv._reply(request_id, code)
        end_session(srv, 0)
        return 0
    if code == p.CLOCK_SET:
        if len(body) != 4:
            return _fail(srv, request_id, p.E_BAD_ARGS, "CLOCK_SET takes u32 seconds")
        clock = srv.app.hal.clock
        old = clock.rtc_s()
        new = struct.unpack("<I", body)[0]
        clock.set_rtc_s(new)
        srv.log.append(events.CLOCK_SET, old, new)
        srv._reply(request_id, code, struct.pack("<I", old))
        return 0
    if code == p.KEY_CHANGE:
        return _key_change(srv, request_id, seq, body)
    if code == p.LIBRARY_LOAD or code == p.LIBRARY_COMMIT:
        return _library(srv, request_id, code, body)
    return _fail(srv, request_id, p.E_UNKNOWN_COMMAND, "%s is not supported by this firmware"
                 % _WRITE_NAMES.get(code, "0x%02x" % code))


def _key_change(srv, request_id, seq, body):
    if len(body) != 65 or not 1 <= body[0] <= 3:
        return _fail(srv, request_id, p.E_BAD_ARGS, "KEY_CHANGE takes u8 which (1 tech, "
                     "2 fleet, 3 both) and 64 wrapped key bytes")
    if therapy_active(srv.app.core.phase):
        return _fail(srv, request_id, p.E_BUSY, "keys cannot be changed while infusing")
    which = body[0]
    plain = au.wrap(srv.auth.session.key, seq, body[1:])
    tech = plain[:32] if which & 1 else None
    fleet = plain[32:] if which & 2 else None
    keys = srv.keys
    if (tech if tech is not None else keys.tech_key) == (
            fleet if fleet is not None else keys.fleet_key):
        return _fail(srv, request_id, p.E_BAD_ARGS, "technician and fleet keys must differ")
    keys.store(tech, fleet)
    srv.log.append(events.KEYS_CHANGED, which, 2)
    active = 1
    if fleet is not None and srv.libraries is not None:
        lib = srv.libraries.reopen_active()
        srv.app.set_library(lib)
        active = 1 if lib is not None else 0
    tech_fp, fleet_fp = keys.fingerprints()
    srv._reply(request_id, p.KEY_CHANGE, struct.pack("<BB8s8s", keys.flags(), active,
                                                     tech_fp.encode(), fleet_fp.encode()))
    return 0


# ---- drug library ------------------------------------------------------------------------------
def library_info(srv, request_id):
    store = srv.libraries
    lib = srv.app.library
    load = store.load if store is not None else None
    name = lib.name.encode()[:64] if lib is not None else b""
    head = struct.pack("<IIIHBBIIB",
                       lib.library_id if lib is not None else 0,
                       lib.version if lib is not None else 0,
                       lib.created_s if lib is not None else 0,
                       lib.entry_count if lib is not None else 0,
                       lib.care_area_count if lib is not None else 0,
                       store.active_slot & 0xFF if store is not None else 0xFF,
                       load.received if load is not None else 0,
                       load.size if load is not None else 0, len(name))
    note = store.last_error.encode()[:200] if store is not None else b""
    srv._reply(request_id, p.LIBRARY_INFO, head + name + note)


def _busy(srv, request_id):
    """Refuse a library command while a therapy is in progress; 0 when it may go on."""
    phase = srv.app.core.phase
    if therapy_active(phase):
        name = sc.PHASE_NAMES[phase] if phase < len(sc.PHASE_NAMES) else str(phase)
        return _fail(srv, request_id, p.E_BUSY, "library loading refused while a therapy is "
                     "in progress (%s): stop the infusion first" % name)
    if phase == sc.PHASE_READY and srv.app.therapy is not None:
        return _fail(srv, request_id, p.E_BUSY, "library loading refused: a program from the "
                     "current library is waiting to start; clear or run it first")
    return 0


def _library(srv, request_id, code, body):
    store = srv.libraries
    if store is None:
        return _fail(srv, request_id, p.E_UNKNOWN_COMMAND, "this pump has no library store")
    busy = _busy(srv, request_id)
    if busy:
        return busy
    try:
        if code == p.LIBRARY_LOAD:
            if len(body) != 36:
                return _fail(srv, request_id, p.E_BAD_ARGS, "LIBRARY_LOAD takes u32 size and "
                             "the file's 32-byte sha256")
            size = struct.unpack_from("<I", body, 0)[0]
            have = store.begin(size, body[4:])
            srv._reply(request_id, code, struct.pack("<IIHB", have, size, MAX_CHUNK,
                                                     store.load.slot) + MODEL.encode())
            return 0
        if len(body) != 32:
            return _fail(srv, request_id, p.E_BAD_ARGS, "LIBRARY_COMMIT takes the file's "
                         "32-byte sha256")
        lib = store.commit(body)
    except StoreError as e:
        err = p.E_REFUSED if e.refused else p.E_BAD_ARGS
        if e.reason == R_STORAGE:
            err = p.E_STORAGE
        if code == p.LIBRARY_LOAD and e.refused:
            # refused before any byte (size, no fleet key): the store logs only what it
            # verifies, so the refusal of the announced library is logged here
            store._reject(e.reason, 0, e.message)
        return _fail(srv, request_id, err, e.message)
    except OSError as e:
        store.abort()
        if code == p.LIBRARY_COMMIT:          # the new slot could not be read back
            store._reject(R_STORAGE, 0, "flash error while verifying: %s" % (e,))
        return _fail(srv, request_id, p.E_STORAGE, "flash error: %s: the previous library "
                     "stays active" % (e,))
    srv.app.set_library(lib)
    srv._reply(request_id, code, struct.pack("<IIIHBB", lib.library_id, lib.version,
                                             lib.created_s, lib.entry_count,
                                             lib.care_area_count, store.active_slot) +
               lib.name.encode()[:64])
    return 0


def _library_chunk(srv, request_id, body):
    store = srv.libraries
    if store is None:
        return _fail(srv, request_id, p.E_UNKNOWN_COMMAND, "this pump has no library store")
    if _busy(srv, request_id):
        return
    if len(body) < 4:
        return _fail(srv, request_id, p.E_BAD_ARGS, "LIBRARY_CHUNK takes u32 offset and data")
    offset = struct.unpack_from("<I", body, 0)[0]
    try:
        have = store.chunk(offset, memoryview(body)[4:])
    except StoreError as e:
        return _fail(srv, request_id, p.E_BAD_ARGS, e.message)
    except OSError as e:
        store.abort()
        return _fail(srv, request_id, p.E_STORAGE, "flash error: %s: load again to resume"
                     % (e,))
    srv._reply(request_id, p.LIBRARY_CHUNK, struct.pack("<I", have))
