"""`pumpctl library ...`: check, compile, show, diff and load a drug library (SR-LIB-1..3).

Owns the click group that ``host_tools/pumpctl/cli.py`` mounts as ``library``.
Exit codes: 0 success (``check`` may print warnings), 1 the library or a file is
refused (every problem is printed, naming row, field, value and limit), 2 bad
command-line usage.  The work is done in ``source``, ``check``, ``compiler``,
``show`` and ``diff``; ``load`` talks to the pump through ``host_tools/pumpctl``
(``load.py``, ``session.py``).
"""
import os
import re
import sys
import time

import click
from rich.console import Console

from firmware import druglib as dl
from host_tools.library import check as ck
from host_tools.library import compiler as cp
from host_tools.library import diff as df
from host_tools.library import show as sh
from host_tools.library import source as sm

console = Console()
U32 = click.IntRange(1, dl.U32_MAX)


def _key(path):
    try:
        key, warnings = cp.load_key(path)
    except cp.KeyFileError as e:
        raise click.ClickException(str(e))
    for w in warnings:
        click.echo("warning: " + w, err=True)
    return key


def _print_problems(problems):
    for p in ck.errors(problems):
        click.echo(str(p))
    for p in ck.warnings(problems):
        click.echo("warning: " + str(p))


@click.group("library")
def library():
    """Drug library: check, compile, show, compare and load (SR-LIB-1..3)."""


@library.command("check")
@click.argument("source_path", metavar="FILE", type=click.Path(dir_okay=False))
def check_cmd(source_path):
    """Check a library source (CSV or JSON) and list every problem at once."""
    model, problems = ck.check_file(source_path)
    errs = ck.errors(problems)
    _print_problems(problems)
    if errs or model is None:
        click.echo("%s: %d error%s, %d warning%s" % (
            source_path, len(errs), "" if len(errs) == 1 else "s",
            len(ck.warnings(problems)), "" if len(ck.warnings(problems)) == 1 else "s"))
        sys.exit(1)
    click.echo("%s: OK: %s%s" % (source_path, ck.summary(model),
                                 "; %d warnings" % len(ck.warnings(problems))
                                 if ck.warnings(problems) else ""))


def _default_name(path):
    stem = os.path.splitext(os.path.basename(path))[0][:32].strip()
    return stem if re.fullmatch(r"[!-~]([ -~]*[!-~])?", stem or "") else None


@library.command("compile")
@click.argument("source_path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="fleet key file: 32 raw bytes or 64 hex digits")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="where to write the binary")
@click.option("--library-id", type=U32, default=None, help="library id (1..2^32-1)")
@click.option("--version", "version", type=U32, default=None,
              help="library version, a whole number that grows with each release")
@click.option("--model", "model_name", default=None,
              help="pump model the library is for [default: %s]" % cp.DEFAULT_MODEL)
@click.option("--name", default=None, help="library name shown on the pump "
              "[default: the source's, else the file name]")
def compile_cmd(source_path, key_path, out_path, library_id, version, model_name, name):
    """Check FILE and compile it into a signed binary for the pump."""
    key = _key(key_path)
    t0 = time.perf_counter()
    overrides = {"library_id": library_id, "version": version, "model": model_name,
                 "name": name}
    model, problems = ck.check_file(source_path, overrides)
    if model is not None and not ck.errors(problems):
        problems += ck.require_identity(model)
    errs = ck.errors(problems)
    if errs or model is None:
        _print_problems(problems)
        click.echo("%s: %d errors: nothing written" % (source_path, len(errs)))
        sys.exit(1)
    lib = model["library"]
    if lib.get("name") is None:
        lib["name"] = _default_name(source_path)
    if lib.get("model") is None:
        lib["model"] = cp.DEFAULT_MODEL
    try:
        data = cp.compile_model(model, key)
    except cp.CompileError as e:
        raise click.ClickException(str(e))
    elapsed = time.perf_counter() - t0
    try:
        cp.write_atomically(out_path, data)
    except OSError as e:
        raise click.ClickException("cannot write %s: %s" % (out_path, e.strerror))
    for p in ck.warnings(problems):
        click.echo("warning: " + str(p))
    click.echo("wrote %s: %d bytes, library %d version %d for %s, %s; checked and compiled in "
               "%.0f ms, signed with key %s" % (
                   out_path, len(data), lib["library_id"], lib["version"], lib["model"],
                   ck.summary(model), elapsed * 1000, cp.key_fingerprint(key)))


@library.command("show")
@click.argument("lib_path", metavar="LIB.bin", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="fleet key file the library must be signed with")
@click.option("--model", "expected_model", default=None,
              help="also refuse the library unless it is for this pump model")
@click.option("--care-area", default=None, help="show only this care area")
@click.option("--as", "as_format", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True,
              help="csv/json print an editable source with the same content")
def show_cmd(lib_path, key_path, expected_model, care_area, as_format):
    """Verify a compiled library (CRC, tag, schema, model) and print it."""
    key = _key(key_path)
    try:
        info, model = sh.decode(lib_path, key, expected_model)
    except sh.ShowError as e:
        raise click.ClickException("%s refused: %s" % (lib_path, e))
    if care_area is not None:
        areas = [a for a in model["care_areas"] if a["name"] == care_area]
        if not areas:
            raise click.ClickException("no care area %r (have: %s)" % (
                care_area, ", ".join(a["name"] for a in model["care_areas"])))
        model = dict(model, care_areas=areas)
    if as_format == "csv":
        click.echo(sm.to_csv(model), nl=False)
        return
    if as_format == "json":
        click.echo(sm.to_json(model), nl=False)
        return
    out = console if console.is_terminal else Console(width=200)   # files: no truncation
    out.print(sh.identity_table(lib_path, info, model, cp.key_fingerprint(key)))
    for area in model["care_areas"]:
        out.print(sh.care_area_table(area))


@library.command("diff")
@click.argument("a_path", metavar="A", type=click.Path(dir_okay=False))
@click.argument("b_path", metavar="B", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", default=None, type=click.Path(dir_okay=False),
              help="fleet key, needed when A or B is a compiled binary")
def diff_cmd(a_path, b_path, key_path):
    """Say what changed from library A to library B (sources or binaries)."""
    key = _key(key_path) if key_path else None
    try:
        a = sh.load_any(a_path, key)
        b = sh.load_any(b_path, key)
    except sh.ShowError as e:
        raise click.ClickException(str(e))
    changes = df.diff_models(a, b)
    colour = {df.ADDED: "green", df.REMOVED: "red", df.CHANGED: "yellow"}
    for c in changes:
        console.print("[%s]%s[/]" % (colour[c.kind], str(c).replace("[", r"\[")),
                      highlight=False, soft_wrap=True)
    click.echo("%s -> %s: %s" % (a_path, b_path, df.summary(changes)))


@library.command("load")
@click.argument("lib_path", metavar="LIB.bin", type=click.Path(dir_okay=False))
@click.option("--port", required=True, help="serial port, e.g. /dev/ttyACM0 or a pty path")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="technician key file (to log in)")
@click.option("--window", default=4, show_default=True, type=click.IntRange(1, 32),
              help="chunks sent ahead of their acknowledgement")
@click.option("--timeout", default=5.0, show_default=True, help="seconds per reply")
@click.option("--force", is_flag=True,
              help="send even when the file fails the host's own checks (the pump refuses it)")
def load_cmd(lib_path, port, key_path, window, timeout, force):
    """Load a compiled library into the pump (A/B slots; resumes an interrupted load)."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)
    from host_tools.pumpctl import load as ld
    from host_tools.pumpctl.link import PumpError
    from host_tools.pumpctl.service_cli import logged_in
    try:
        with open(lib_path, "rb") as f:
            data = f.read(dl.MAX_LIBRARY_BYTES + 1)
    except OSError as e:
        raise click.ClickException("cannot read %s: %s" % (lib_path, e.strerror))
    try:
        header = ld.precheck(data)
    except ld.LoadError as e:
        if not force:
            raise click.ClickException("%s not sent: %s" % (lib_path, e))
        click.echo("warning: %s: %s (sent anyway: --force)" % (lib_path, e), err=True)
        header = None
    with logged_in(port, key_path, timeout) as (link, session):
        if header is not None:
            click.echo("loading library %d version %d (%d bytes) into pump %s" % (
                header.library_id, header.version, len(data), session.serial))
        with Progress(TextColumn("library"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("load", total=len(data))
            first = []

            def on_progress(done, total):
                if not first:
                    first.append(done)
                    if done:
                        progress.console.print("resuming at byte %d of %d (already on the "
                                               "pump)" % (done, total))
                progress.update(task, completed=done)
            try:
                r = ld.load(session, data, window=window, progress=on_progress,
                            timeout_s=timeout, check_model=not force)
            except PumpError as e:
                raise click.ClickException("load failed: %s" % e)
            except ld.LoadError as e:
                raise click.ClickException("%s not sent: %s" % (lib_path, e))
    click.echo("loaded: library %d version %d %r active on pump %s (slot %s); %d bytes sent "
               "in %.1f s%s" % (r["library_id"], r["version"], r["name"], session.serial,
                                "AB"[r["slot"]] if r["slot"] in (0, 1) else r["slot"],
                                r["bytes_sent"], r["seconds"],
                                ", resumed from byte %d" % r["resumed_from"]
                                if r["resumed_from"] else ""))
