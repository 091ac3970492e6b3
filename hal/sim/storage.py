"""Storage backends off the device: RAM files (``hal/ram_storage.py``), POSIX files.

Owns the sim's choice of storage: ``RamStorage`` (re-exported from
``hal.ram_storage``, with power-cut injection) and ``PosixStorage``, real files in
a directory (the virtual pump).  Both follow the ``hal.Storage`` interface.
"""
from hal.ram_storage import EIO, PowerCut, RamStorage  # noqa: F401  (re-exported)
from hal.vfs_storage import FileStorage


class PosixStorage(FileStorage):
    """Files in a host directory (the virtual pump); see hal/vfs_storage.py."""
