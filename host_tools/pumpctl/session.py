"""Technician session on the host: login and authenticated writes (SR-SVC-2).

Owns the host end of ``firmware/auth.py`` (same tags and formats, the pump's
own functions are reused): ask for a challenge, answer it with the technician
key, check the pump's proof that it holds the same key, then sign every write
frame with a fresh sequence number under the session key; the first keys'
provisioning.  See ``docs/SERVICE_LINK.md``.
"""
import struct
import time

from firmware import auth as au
from firmware import protocol as p
from firmware.mac import HmacKey, equal_digest, fingerprint
from host_tools.pumpctl.link import PumpError


class Session:
    """A logged-in service session over an open ``PumpLink``."""

    def __init__(self, link, tech_key):
        self.link = link
        self.tech_key = tech_key
        self.key = None
        self.mac_key = None
        self.seq = 0
        self.serial = None
        self.counter = None
        self.idle_s = None

    def login(self):
        """Challenge, answer, check the pump's proof.  Raises PumpError."""
        link = self.link
        reply = link.request(p.LOGIN_CHALLENGE, retries=0)
        if len(reply) < au.NONCE_SIZE + 6:
            raise PumpError("PROTOCOL", "LOGIN_CHALLENGE reply of %d bytes" % len(reply))
        nonce = reply[:au.NONCE_SIZE]
        counter, idle_s = struct.unpack_from("<IH", reply, au.NONCE_SIZE)
        serial = bytes(reply[au.NONCE_SIZE + 6:])
        answer = au.login_answer(self.tech_key, nonce, serial, counter)
        reply = link.request(p.LOGIN, nonce + answer, retries=0)
        skey = au.session_key(self.tech_key, nonce, serial, counter)
        if len(reply) < au.PROOF_SIZE or not equal_digest(reply[:au.PROOF_SIZE],
                                                          au.pump_proof(skey)):
            raise PumpError("AUTH", "the pump accepted the login but could not prove it holds "
                            "the same technician key: not the pump you think it is")
        self.key = skey
        self.mac_key = HmacKey(skey)
        self.seq = 0
        self.serial = serial.decode(errors="replace")
        self.counter = counter
        self.idle_s = idle_s
        self.login_frames = (nonce, answer)      # kept for the replay tests
        return self

    def frame(self, code, body):
        """The payload of one write frame: a new sequence number, body, MAC."""
        if self.key is None:
            raise PumpError("AUTH", "not logged in")
        self.seq += 1
        return (struct.pack("<I", self.seq) + bytes(body) +
                au.write_mac(self.mac_key, code, self.seq, bytes(body)))

    def write(self, code, body=b"", timeout_s=None):
        """One authenticated write, sent once; returns the reply payload."""
        return self.link.request(code, self.frame(code, body), retries=0, timeout_s=timeout_s)

    def send_write(self, code, body):
        """Send a write without waiting (pipelined load); returns its request id."""
        rid = self.link.new_id()
        self.link.send(rid, code, self.frame(code, body))
        return rid

    def logout(self, timeout_s=0.5):
        """End the session (the pump also ends it after its idle time); a lost reply is
        not an error."""
        try:
            self.write(p.LOGOUT, timeout_s=timeout_s)
        except PumpError:
            pass
        self.key = None

    def change_keys(self, tech_key=None, fleet_key=None):
        """KEY_CHANGE: new keys wrapped under the session key.  Returns the reply dict."""
        which = (1 if tech_key is not None else 0) | (2 if fleet_key is not None else 0)
        if not which:
            raise ValueError("no new key given")
        plain = (tech_key or bytes(32)) + (fleet_key or bytes(32))
        seq = self.seq + 1                       # the sequence number frame() will use
        body = bytes((which,)) + au.wrap(self.key, seq, plain)
        reply = self.write(p.KEY_CHANGE, body)
        flags, active, tech_fp, fleet_fp = struct.unpack_from("<BB8s8s", reply, 0)
        return {"flags": flags, "library_active": bool(active),
                "tech_fp": tech_fp.decode(), "fleet_fp": fleet_fp.decode()}


def provision(link, tech_key, fleet_key, wait_s=35.0, on_prompt=None, poll_s=0.25):
    """KEY_PROVISION and wait for SELECT on the pump.  Returns the KEY_STATUS dict.

    Raises PumpError when the pump refuses or the confirmation does not come."""
    reply = link.request(p.KEY_PROVISION, tech_key + fleet_key, retries=0)
    _, seconds = struct.unpack_from("<BH", reply, 0)
    if on_prompt is not None:
        on_prompt(seconds, fingerprint(tech_key), fingerprint(fleet_key))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        st = link.key_status()
        if st["prompt"] == 2:                    # accepted
            if st["tech_fp"] != fingerprint(tech_key) or st["fleet_fp"] != fingerprint(
                    fleet_key):
                raise PumpError("AUTH", "the pump holds keys %s/%s, not the ones sent"
                                % (st["tech_fp"], st["fleet_fp"]))
            return st
        if st["prompt"] == 3:
            raise PumpError("NOT_CONFIRMED", "SELECT was not pressed on the pump within %d s: "
                            "no key stored" % seconds)
        time.sleep(poll_s)
    raise PumpError("TIMEOUT", "the pump did not report the confirmation within %.0f s"
                    % wait_s)
