"""`pumpctl library load`: send a compiled library to the pump over a session (SR-LIB-3).

Owns the host side of a load: a local look at the file (magic, declared length,
CRC-32, model: the pump checks all of it again, plus the tag), LIBRARY_LOAD
(begin, or resume: the pump answers with the bytes it already holds of this
very file, identified by its SHA-256), the chunks pipelined a few frames ahead
(``window``) so the link never idles waiting for an acknowledgement, and
LIBRARY_COMMIT, after which the pump has verified the slot and switched to it.
Every chunk acknowledgement carries the pump's byte count: a lost or refused
frame makes the sender go back to that count, never skip ahead.
"""
import hashlib
import struct
import time

from firmware import druglib as dl
from firmware import protocol as p
from firmware.crc import crc32
from host_tools.pumpctl.link import PumpError

DEFAULT_WINDOW = 4
STALL_RETRIES = 4
LOST_FRAME = ("BAD_CRC", "MALFORMED", "OVERSIZE", "TIMEOUT")


class LoadError(Exception):
    """The file cannot be loaded; the message says why."""


def precheck(data, pump_model=None):
    """Header of a library file after the checks the host can make without the fleet
    key (magic, length, CRC, model); raises LoadError.  The pump checks it all again."""
    if len(data) < dl.PREAMBLE_SIZE or data[:4] != dl.MAGIC:
        raise LoadError("not a drug library (magic %r)" % (bytes(data[:4]),))
    body_size = struct.unpack_from("<I", data, 8)[0]
    total = body_size + dl.CRC_SIZE + dl.TAG_SIZE
    if len(data) < total:
        raise LoadError("truncated: %d bytes, the header declares %d" % (len(data), total))
    if len(data) > total:
        raise LoadError("%d bytes, longer than the %d its header declares" % (len(data), total))
    stored = struct.unpack_from("<I", data, body_size)[0]
    if stored != crc32(data[:body_size]):
        raise LoadError("CRC mismatch: the file is damaged")
    try:
        header = dl.Header(data[:dl.HEADER_SIZE])
    except dl.LibraryError as e:
        raise LoadError(str(e))
    if pump_model is not None and header.model != pump_model:
        raise LoadError("library is for %r, the pump is %r" % (header.model, pump_model))
    return header


def load(session, data, window=DEFAULT_WINDOW, progress=None, chunk_size=None,
         timeout_s=None, commit_timeout_s=60.0, check_model=True):
    """Send ``data`` and commit it.  Returns a dict: resumed_from, bytes_sent, chunks,
    seconds, library_id, version, name, slot.  Raises PumpError (the pump's refusal or
    a link failure) or LoadError (``check_model``: the file is for another model than
    the pump, found before any chunk is sent); an interrupted load resumes on the next
    call with the same file."""
    link = session.link
    timeout_s = timeout_s or link.timeout_s
    digest = hashlib.sha256(data).digest()
    size = len(data)
    t0 = time.monotonic()
    reply = session.write(p.LIBRARY_LOAD, struct.pack("<I", size) + digest)
    have, _, max_chunk, slot = struct.unpack_from("<IIHB", reply, 0)
    pump_model = reply[11:].decode(errors="replace")
    if check_model and pump_model:
        precheck(data, pump_model)
    resumed_from = have
    chunk = min(chunk_size or max_chunk, max_chunk)
    if progress is not None:
        progress(have, size)
    acked = have
    next_off = have
    inflight = []                     # [(request id, end offset)] in sending order
    sent = 0
    frames = 0
    stalls = 0
    while acked < size:
        while len(inflight) < window and next_off < size:
            part = data[next_off:next_off + chunk]
            rid = session.send_write(p.LIBRARY_CHUNK, struct.pack("<I", next_off) + part)
            inflight.append((rid, next_off + len(part)))
            next_off += len(part)
            sent += len(part)
            frames += 1
        rid, end = inflight.pop(0)
        try:
            reply = link.wait(rid, p.LIBRARY_CHUNK, time.monotonic() + timeout_s)
            received = struct.unpack_from("<I", reply, 0)[0]
        except PumpError as e:
            if e.code not in LOST_FRAME:
                raise
            received = acked              # a frame lost on the way: go back to the count
        if received > acked:
            acked = received
            stalls = 0
            if progress is not None:
                progress(acked, size)
        if received < end:
            # the pump holds less than this chunk's end: resend from where it is
            stalls += 1
            if stalls > STALL_RETRIES:
                raise PumpError("STALLED", "the pump stays at byte %d of %d" % (acked, size))
            for other, _ in inflight:     # wait out the frames still on the way
                try:
                    reply = link.wait(other, p.LIBRARY_CHUNK, time.monotonic() + timeout_s)
                    acked = max(acked, struct.unpack_from("<I", reply, 0)[0])
                except PumpError as e:
                    if e.code not in LOST_FRAME:
                        raise
            inflight = []
            if progress is not None:
                progress(acked, size)
            next_off = acked
    reply = None
    for attempt in range(2):             # the commit is idempotent (same file digest)
        try:
            reply = session.write(p.LIBRARY_COMMIT, digest, timeout_s=commit_timeout_s)
            break
        except PumpError as e:
            if e.code != "TIMEOUT" or attempt:
                raise
    lib_id, version, created, entries, areas, slot = struct.unpack_from("<IIIHBB", reply, 0)
    name = reply[struct.calcsize("<IIIHBB"):].decode(errors="replace")
    return {"resumed_from": resumed_from, "bytes_sent": sent, "chunks": frames,
            "seconds": time.monotonic() - t0, "library_id": lib_id, "version": version,
            "name": name, "slot": slot, "entries": entries, "care_areas": areas,
            "created_s": created}
