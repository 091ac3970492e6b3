"""`pumpctl key ...`, `pumpctl login`, `pumpctl clock set`: the authenticated service link.

Owns the technician-facing commands around the login of SR-SVC-2 (the protocol
is ``firmware/auth.py``, the host end ``session.py``): provisioning the first
keys with the on-pump confirmation, changing keys after a login, checking a
login, and ``logged_in()``, which every write command (``library load``,
``clock set``, ``key change``) uses with its ``--key``.  Every failure prints
the pump's reason and exits non-zero.  See ``docs/SERVICE_LINK.md``.
"""
import contextlib
import os
import time

import click

from firmware.mac import fingerprint
from host_tools.library import compiler as cp
from host_tools.pumpctl.link import PumpError, PumpLink
from host_tools.pumpctl.session import Session, provision

KEY_HELP = "technician key file (32 raw bytes or 64 hex digits)"


def read_key(path, what="key"):
    """The 32-byte key in ``path``; warnings (file mode) printed; ClickException if bad."""
    try:
        key, warnings = cp.load_key(path)
    except cp.KeyFileError as e:
        raise click.ClickException(str(e).replace("a fleet key", "a " + what))
    for w in warnings:
        click.echo("warning: " + w, err=True)
    return key


def open_link(port, timeout):
    try:
        return PumpLink(port, timeout_s=timeout)
    except PumpError as e:
        raise click.ClickException(str(e))


@contextlib.contextmanager
def logged_in(port, key_path, timeout):
    """An open link and a logged-in Session; logs out at the end."""
    key = read_key(key_path, "technician key")
    link = open_link(port, timeout)
    try:
        session = Session(link, key)
        try:
            session.login()
        except PumpError as e:
            raise click.ClickException("login refused: %s" % e)
        try:
            yield link, session
        finally:
            session.logout()
    finally:
        link.close()


@click.group("key")
def key_group():
    """Service keys: generate, provision the first ones, change, status (SR-SVC-2)."""


@key_group.command("generate")
@click.argument("out_path", metavar="OUT", type=click.Path(dir_okay=False))
def key_generate(out_path):
    """Write a new random 32-byte key to OUT (mode 600); prints its fingerprint."""
    if os.path.exists(out_path):
        raise click.ClickException("%s exists: not overwritten" % out_path)
    key = os.urandom(32)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    click.echo("wrote %s: key %s" % (out_path, fingerprint(key)))


@key_group.command("provision")
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyACM0 or a pty path")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help=KEY_HELP)
@click.option("--fleet-key", "fleet_path", required=True, type=click.Path(dir_okay=False),
              help="fleet key file: what drug libraries are signed with")
@click.option("--timeout", default=2.0, show_default=True, help="seconds per reply")
def key_provision(port, key_path, fleet_path, timeout):
    """Give a new pump its first keys: press SELECT on the pump to accept them."""
    tech = read_key(key_path, "technician key")
    fleet = read_key(fleet_path, "fleet key")

    def prompt(seconds, tech_fp, fleet_fp):
        click.echo("The pump shows the keys' fingerprints: technician %s, fleet %s.\n"
                   "Check them and press SELECT on the pump within %d s to accept."
                   % (tech_fp, fleet_fp, seconds))
    with contextlib.closing(open_link(port, timeout)) as link:
        try:
            st = provision(link, tech, fleet, on_prompt=prompt)
        except PumpError as e:
            raise click.ClickException(str(e))
    click.echo("keys provisioned: technician %s, fleet %s" % (st["tech_fp"], st["fleet_fp"]))


@key_group.command("status")
@click.option("--port", required=True)
@click.option("--timeout", default=2.0, show_default=True)
def key_status(port, timeout):
    """Which keys the pump holds (fingerprints only), lockout, session."""
    with contextlib.closing(open_link(port, timeout)) as link:
        try:
            st = link.key_status()
        except PumpError as e:
            raise click.ClickException(str(e))
    click.echo("technician key: %s" % (st["tech_fp"] or "none"))
    click.echo("fleet key:      %s" % (st["fleet_fp"] or "none"))
    click.echo("key store:      %s" % st["store"])
    click.echo("failed logins in a row: %d%s" % (
        st["failures"], "; locked out for %d s" % st["lockout_s"] if st["lockout_s"] else ""))
    click.echo("session: %s" % ("active" if st["session"] else "none"))


@key_group.command("change")
@click.option("--port", required=True)
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="the CURRENT technician key file (to log in)")
@click.option("--new-key", "new_path", default=None, type=click.Path(dir_okay=False),
              help="new technician key file")
@click.option("--fleet-key", "fleet_path", default=None, type=click.Path(dir_okay=False),
              help="new fleet key file (the active library must be signed with it, or the "
                   "pump has none until one is loaded)")
@click.option("--timeout", default=2.0, show_default=True)
def key_change(port, key_path, new_path, fleet_path, timeout):
    """Replace the technician and/or fleet key after logging in with the current key."""
    if not new_path and not fleet_path:
        raise click.UsageError("give --new-key and/or --fleet-key")
    new = read_key(new_path, "technician key") if new_path else None
    fleet = read_key(fleet_path, "fleet key") if fleet_path else None
    with logged_in(port, key_path, timeout) as (link, session):
        try:
            r = session.change_keys(new, fleet)
        except PumpError as e:
            raise click.ClickException(str(e))
    click.echo("keys changed: technician %s, fleet %s" % (r["tech_fp"], r["fleet_fp"]))
    if fleet is not None and not r["library_active"]:
        click.echo("warning: the active library is not signed with the new fleet key: the "
                   "pump has no library until you load one that is", err=True)


@click.command("login")
@click.option("--port", required=True)
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help=KEY_HELP)
@click.option("--timeout", default=2.0, show_default=True)
def login_cmd(port, key_path, timeout):
    """Check a technician key: log in, print the session, log out."""
    with logged_in(port, key_path, timeout) as (link, session):
        click.echo("logged in to pump %s (login %d, session ends after %d s without a write); "
                   "the pump proved it holds the same key" % (session.serial, session.counter,
                                                             session.idle_s))


@click.group("clock")
def clock_group():
    """The pump's real-time clock."""


@clock_group.command("set")
@click.option("--port", required=True)
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help=KEY_HELP)
@click.option("--time", "when", default="now", show_default=True,
              help="Unix seconds (UTC), or 'now' (this computer's clock)")
@click.option("--timeout", default=2.0, show_default=True)
def clock_set(port, key_path, when, timeout):
    """Set the pump's RTC (logged on the pump with the old and new time)."""
    import struct
    from firmware import protocol as p
    try:
        seconds = int(time.time()) if when == "now" else int(when)
    except ValueError:
        raise click.UsageError("--time takes Unix seconds or 'now'")
    if not 0 <= seconds <= 0xFFFFFFFF:
        raise click.UsageError("--time out of range")
    with logged_in(port, key_path, timeout) as (link, session):
        try:
            old = struct.unpack("<I", session.write(p.CLOCK_SET, struct.pack("<I", seconds)))[0]
        except PumpError as e:
            raise click.ClickException(str(e))
    click.echo("pump clock set to %s (was %s, %+d s)" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(old)), seconds - old))


def register(main):
    main.add_command(key_group)
    main.add_command(login_cmd)
    main.add_command(clock_group)
