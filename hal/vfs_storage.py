"""``hal.Storage`` over a real filesystem: littlefs on the device, a host directory in sim.

Owns the file operations both the device backends (VfsLfs2 mounted at /) and
the virtual pump (a host directory) need.  Uses only ``open`` and ``os``
functions present on MicroPython ports and CPython alike.
"""
import os

import hal


class FileStorage(hal.Storage):
    """Files below one directory."""

    def __init__(self, directory):
        self.directory = directory.rstrip("/")
        if self.directory:
            try:
                os.mkdir(self.directory)
            except OSError:
                pass          # exists

    def _path(self, name):
        return self.directory + "/" + name

    def open(self, name, mode="rb"):
        return open(self._path(name), mode)

    def exists(self, name):
        try:
            os.stat(self._path(name))
            return True
        except OSError:
            return False

    def size(self, name):
        return os.stat(self._path(name))[6]

    def remove(self, name):
        os.remove(self._path(name))

    def rename(self, old, new):
        os.rename(self._path(old), self._path(new))

    def listdir(self):
        return sorted(os.listdir(self.directory or "/"))
