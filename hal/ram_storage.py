"""``hal.Storage`` in RAM, with power-cut injection (sim, tests, and the device's fallback).

Owns in-memory file semantics: ``RamStorage`` keeps bytes in memory and can cut
the power after N more bytes have been written (the write stops part-way and
raises OSError, as a brown-out would), so tests can prove that a log or library
survives a power cut at any byte.  On a board it is the stand-in when the flash
filesystem cannot be mounted (``hal/inert.py``): the pump then still logs in RAM
and reports the storage failure in its self test.  Portable (device image).
"""
import hal

EIO = 5


class PowerCut(OSError):
    """Raised by RamStorage when the injected power cut happens."""


class _RamFile:
    def __init__(self, storage, name, data, pos, writable):
        self.storage = storage
        self.name = name
        self.data = data
        self.pos = pos
        self.writable = writable

    def read(self, n=-1):
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        out = bytes(self.data[self.pos:end])
        self.pos = end
        return out

    def readinto(self, buf):
        chunk = self.read(len(buf))
        buf[:len(chunk)] = chunk
        return len(chunk)

    def write(self, b):
        if not self.writable:
            raise OSError(EIO)
        n = self.storage._allow(len(b))
        end = self.pos + n
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[self.pos:end] = b[:n]
        self.pos = end
        if n < len(b):
            raise PowerCut(EIO)
        return n

    def seek(self, offset, whence=0):
        if whence == 1:
            offset += self.pos
        elif whence == 2:
            offset += len(self.data)
        self.pos = offset
        return offset

    def tell(self):
        return self.pos

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RamStorage(hal.Storage):
    """Files in memory; ``cut_power_after_bytes(n)`` injects a brown-out."""

    def __init__(self):
        self.files = {}
        self.budget = None          # bytes that may still be written, None = unlimited
        self.bytes_written = 0

    def cut_power_after_bytes(self, n):
        self.budget = n

    def restore_power(self):
        self.budget = None

    def _allow(self, n):
        if self.budget is None:
            self.bytes_written += n
            return n
        allowed = n if n <= self.budget else self.budget
        self.budget -= allowed
        self.bytes_written += allowed
        return allowed

    def open(self, name, mode="rb"):
        if "r" in mode and "+" not in mode:
            if name not in self.files:
                raise OSError(2)        # ENOENT
            return _RamFile(self, name, self.files[name], 0, False)
        if "w" in mode:
            self.files[name] = bytearray()
        elif name not in self.files:
            if "r" in mode:
                raise OSError(2)
            self.files[name] = bytearray()
        data = self.files[name]
        return _RamFile(self, name, data, len(data) if "a" in mode else 0, True)

    def exists(self, name):
        return name in self.files

    def size(self, name):
        if name not in self.files:
            raise OSError(2)
        return len(self.files[name])

    def remove(self, name):
        if name not in self.files:
            raise OSError(2)
        del self.files[name]

    def rename(self, old, new):
        if old not in self.files:
            raise OSError(2)
        self.files[new] = self.files.pop(old)

    def listdir(self):
        return sorted(self.files)


