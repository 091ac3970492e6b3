"""Authenticated service link (SR-SVC-2, SR-LOG-1): reads open, every write behind a
challenge-response login; the first keys only with SELECT pressed on the pump; captured
logins and writes fail when replayed; failed logins counted, locked out, logged; sessions
time out.  Portable: CPython and MicroPython (tests/mpy/svc_client.py drives the pump).
"""
import struct

from firmware import alarms as al
from firmware import auth as au
from firmware import events
from firmware import protocol as p
from firmware.keystore import KeyStore
from tests.mpy.svc_client import (FLEET_KEY, KEY_SELECT, TECH_KEY, Bench, PumpError,
                                  provisioned_bench)

OTHER_KEY = bytes(range(200, 232))


def _clock_body(t=1800000000):
    return struct.pack("<I", t)


def test_reads_are_open_and_writes_need_a_login_SR_SVC_2():
    b = Bench()
    b.provision()
    assert b.request(p.IDENTIFY).startswith(b"AMB-PUMP-1")
    assert p.decode_status(b.request(p.STATUS))["library_id"] == 0
    for code in p.WRITE_COMMANDS:
        err, msg = b.error_of(code, b"\x00" * 40)
        assert err == p.E_NOT_AUTHORISED and "log in first" in msg, (code, msg)


def test_first_keys_need_select_on_the_pump_within_30_s_SR_SVC_2():
    b = Bench()
    assert b.key_status()["flags"] == 0
    # no SELECT: the prompt shows the fingerprints, then expires and nothing is stored
    st = b.provision(press=False)
    assert st["prompt"] == 1 and 0 < st["left"] <= 30
    shown = b.hal.display.lines
    assert shown[0] == "SERVICE KEYS" and any(FLEET_KEY and "fleet" in x for x in shown)
    b.cycle(310)                                     # 31 s of pump time
    st = b.key_status()
    assert st["prompt"] == 3 and st["flags"] == 0
    assert b.hal.display.lines[0] != "SERVICE KEYS"
    assert b.error_of(p.LOGIN_CHALLENGE)[1].startswith("no technician key")
    # SELECT pressed: stored, logged, kept over a reboot
    st = b.provision()
    assert st["prompt"] == 2 and st["flags"] == 3
    assert b.logged(events.KEYS_CHANGED)[-1][4:] == (3, 1)
    b.boot()
    assert b.app.keys.tech_key == TECH_KEY and b.app.keys.fleet_key == FLEET_KEY
    # the first-keys path is closed from now on
    err, msg = b.error_of(p.KEY_PROVISION, OTHER_KEY + FLEET_KEY)
    assert err == p.E_NOT_AUTHORISED and "already provisioned" in msg
    b.login()


def test_no_key_prompt_over_an_alarm_SELECT_stays_the_alarms_SR_SVC_2():
    """A host cannot put the key prompt over an alarm: the caregiver's SELECT meant for the
    alarm would accept the host's keys."""
    b = Bench()
    b.app.alarms.raise_alarm(al.DOOR_OPEN, 0)
    err, msg = b.error_of(p.KEY_PROVISION, TECH_KEY + FLEET_KEY)
    assert err == p.E_BUSY and "alarm" in msg
    b.hal.buttons.press(KEY_SELECT)
    b.cycle(2)
    assert b.key_status()["flags"] == 0                     # no key stored
    assert not b.app.alarms.is_active(al.DOOR_OPEN)         # SELECT acknowledged the alarm
    #                                                         (the door is closed: cleared)


def test_select_on_the_key_prompt_does_not_reach_the_application():
    b = Bench()
    b.request(p.KEY_PROVISION, TECH_KEY + FLEET_KEY)
    b.app.alarms.raise_alarm(al.INFUSION_COMPLETE, 0)      # raised while the prompt is up
    b.app.alarms.cause_gone(al.INFUSION_COMPLETE)
    b.hal.buttons.press(KEY_SELECT)
    b.cycle(2)
    assert b.app.alarms.is_active(al.INFUSION_COMPLETE), \
        "SELECT on the key prompt also acknowledged an alarm"
    assert b.key_status()["prompt"] == 2
    b.hal.buttons.press(KEY_SELECT)                          # no prompt: the app's again
    b.cycle(2)
    assert not b.app.alarms.is_active(al.INFUSION_COMPLETE)


def test_a_captured_login_answer_fails_when_replayed_SR_SVC_2():
    b = provisioned_bench()
    answer = b.login()                        # captured on the wire
    b.write(p.LOGOUT)
    # no challenge outstanding: refused, not even counted
    err, msg = b.error_of(p.LOGIN, answer)
    assert err == p.E_NOT_AUTHORISED and "single-use" in msg
    # a fresh challenge: the old answer does not answer it (counted as a failed login)
    b.challenge()
    err, msg = b.error_of(p.LOGIN, answer)
    assert err == p.E_NOT_AUTHORISED and "login failed" in msg
    assert b.logged(events.SERVICE_LOGIN)[-1][4:] == (0, 1)
    # each challenge is answered once: the right answer sent twice works once
    nonce, counter, serial = b.challenge()
    good = b.answer_for(nonce, counter, serial)
    b.request(p.LOGIN, good)
    err, msg = b.error_of(p.LOGIN, good)
    assert "single-use" in msg


def test_challenges_are_fresh_and_the_counter_grows_across_reboots_SR_SVC_2():
    b = provisioned_bench()
    seen = []
    counters = []
    for _ in range(3):
        nonce, counter, serial = b.challenge()
        assert serial == b"SN-TEST-1"
        seen.append(nonce)
        counters.append(counter)
    b.boot()
    nonce, counter, _ = b.challenge()
    seen.append(nonce)
    counters.append(counter)
    assert len(set(seen)) == 4 and len(seen[0]) == 16
    assert counters == sorted(counters) and len(set(counters)) == 4


def test_failed_logins_are_counted_logged_and_locked_out_growing_SR_SVC_2():
    b = provisioned_bench()
    b.write(p.LOGOUT)
    for i in range(au.FREE_FAILURES):
        nonce, counter, serial = b.challenge()
        err, msg = b.error_of(p.LOGIN, b.answer_for(nonce, counter, serial, OTHER_KEY))
        assert err == p.E_NOT_AUTHORISED and "login failed" in msg
    assert "locked out for 10 s" in msg
    fails = [r for r in b.logged(events.SERVICE_LOGIN) if r[4] == 0]
    assert [r[5] for r in fails] == [1, 2, 3]
    err, msg = b.error_of(p.LOGIN_CHALLENGE)
    assert err == p.E_NOT_AUTHORISED and "locked out for" in msg
    assert b.key_status()["lockout"] > 0
    # a reboot does not lift it
    b.boot()
    assert "locked out" in b.error_of(p.LOGIN_CHALLENGE)[1]
    b.cycle(110)                                     # 11 s
    nonce, counter, serial = b.challenge()           # the next failure doubles it
    err, msg = b.error_of(p.LOGIN, b.answer_for(nonce, counter, serial, OTHER_KEY))
    assert "locked out for 20 s" in msg
    b.cycle(210)
    b.login()                                        # the right key resets the count
    assert b.key_status()["failures"] == 0
    assert b.app.keys.failures == 0


def test_lockout_grows_to_a_cap():
    assert [au.lockout_s(n) for n in range(7)] == [0, 0, 0, 10, 20, 40, 80]
    assert au.lockout_s(1000) == au.LOCKOUT_MAX_S


def test_a_captured_write_fails_when_replayed_SR_SVC_2():
    b = provisioned_bench()
    frame = b.frame(p.CLOCK_SET, _clock_body())
    b.request(p.CLOCK_SET, frame)
    err, msg = b.error_of(p.CLOCK_SET, frame)            # same session
    assert err == p.E_NOT_AUTHORISED and msg.startswith("replayed frame")
    b.write(p.LOGOUT)
    b.login()
    err, msg = b.error_of(p.CLOCK_SET, frame)            # a later session
    assert err == p.E_NOT_AUTHORISED and "MAC mismatch" in msg
    altered = bytearray(b.frame(p.CLOCK_SET, _clock_body()))
    altered[5] ^= 1                                      # the time, changed in transit
    err, msg = b.error_of(p.CLOCK_SET, bytes(altered))
    assert "MAC mismatch" in msg
    # a MAC for one command is not one for another
    frame = b.frame(p.CLOCK_SET, b"")
    assert "MAC mismatch" in b.error_of(p.LOGOUT, frame)[1]


def test_every_write_is_logged_and_clock_set_works_SR_LOG_1():
    b = provisioned_bench()
    old = struct.unpack("<I", b.write(p.CLOCK_SET, _clock_body(1800000000)))[0]
    assert b.hal.clock.rtc_s() == 1800000000
    assert b.logged(events.CLOCK_SET)[-1][4:] == (old, 1800000000)
    assert b.logged(events.SERVICE_COMMAND)[-1][4:] == (p.CLOCK_SET, 0)
    err, msg = b.error_of(p.CONFIG_SET, b.frame(p.CONFIG_SET, b"x"))
    assert err == p.E_UNKNOWN_COMMAND and "not supported" in msg
    assert b.logged(events.SERVICE_COMMAND)[-1][4:] == (p.CONFIG_SET, p.E_UNKNOWN_COMMAND)
    assert b.logged(events.SERVICE_LOGIN)[-1][4] == 1


def test_session_times_out_and_shows_a_low_alarm_SR_SVC_2():
    b = provisioned_bench()
    assert b.app.alarms.is_active(al.SERVICE_SESSION)
    b.cycle(2900)                                    # 4 min 50 s: still on
    b.write(p.CLOCK_SET, _clock_body())              # and a write restarts the idle time
    b.cycle(2900)
    b.write(p.CLOCK_SET, _clock_body())
    b.cycle(3100)                                    # 5 min 10 s idle
    assert not b.app.alarms.is_active(al.SERVICE_SESSION)
    err, msg = b.error_of(p.CLOCK_SET, b.frame(p.CLOCK_SET, _clock_body()))
    assert err == p.E_NOT_AUTHORISED and "session expired" in msg
    assert b.logged(events.SERVICE_LOGOUT)[-1][4] == 1
    b.login()
    b.write(p.CLOCK_SET, _clock_body())


def test_key_change_needs_the_current_key_and_takes_effect_SR_SVC_2():
    b = provisioned_bench()
    which = 1
    body = bytes((which,)) + au.wrap(b.session_key, b.seq + 1, OTHER_KEY + bytes(32))
    r = b.write(p.KEY_CHANGE, body)
    assert r[0] == 3
    assert b.app.keys.tech_key == OTHER_KEY and b.app.keys.fleet_key == FLEET_KEY
    assert b.logged(events.KEYS_CHANGED)[-1][4:] == (1, 2)
    b.write(p.LOGOUT)
    nonce, counter, serial = b.challenge()
    assert "login failed" in b.error_of(p.LOGIN, b.answer_for(nonce, counter, serial))[1]
    b.login(OTHER_KEY)
    b.boot()
    b.login(OTHER_KEY)


def test_keystore_is_atomic_and_damage_reads_as_damage():
    from hal.sim import RamStorage
    s = RamStorage()
    ks = KeyStore(s)
    assert ks.status == "empty" and not ks.provisioned()
    ks.store(TECH_KEY, FLEET_KEY)
    assert sorted(s.files) == ["keys.bin"]            # the temporary file was renamed
    assert KeyStore(s).tech_key == TECH_KEY
    s.files["keys.bin"][20] ^= 0x40
    ks = KeyStore(s)
    assert ks.tech_key is None and ks.status.startswith("damaged")
    # a power cut while writing keys leaves the old ones
    s = RamStorage()
    KeyStore(s).store(TECH_KEY, FLEET_KEY)
    for n in range(0, 80, 7):
        s.cut_power_after_bytes(n)
        try:
            KeyStore(s).store(OTHER_KEY, None)
        except OSError:
            pass
        s.restore_power()
        assert KeyStore(s).tech_key in (TECH_KEY, OTHER_KEY)
    assert KeyStore(s).tech_key == OTHER_KEY


def test_garbage_on_login_commands_gets_error_replies_SR_SVC_1():
    b = provisioned_bench()
    for code, payload in ((p.LOGIN, b""), (p.LOGIN, b"x" * 100), (p.KEY_PROVISION, b"k"),
                          (p.CLOCK_SET, b"\x01\x02"), (p.LIBRARY_CHUNK, b"\x00" * 3)):
        try:
            b.request(code, payload)
            assert False, code
        except PumpError as e:
            assert e.code in (p.E_BAD_ARGS, p.E_NOT_AUTHORISED), (code, e)
    b.write(p.CLOCK_SET, _clock_body())               # the session survived all of it
