"""Service-port backends off the device: in-memory queues and stdin/stdout.

Owns byte transport only (framing is ``firmware/protocol.py``).
``QueueServicePort`` is for tests: ``feed()`` bytes in, ``drain()`` replies out.
``StdioServicePort`` is the virtual pump's port: non-blocking reads from stdin
and writes to stdout, under CPython and MicroPython unix alike; the
``pumpctl sim`` bridge connects those pipes to a pseudo-terminal.
"""
import sys

import hal

try:
    import select
except ImportError:  # pragma: no cover
    import uselect as select


class QueueServicePort(hal.ServicePort):
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def feed(self, data):
        self.rx.extend(data)

    def drain(self):
        out = bytes(self.tx)
        self.tx = bytearray()
        return out

    def read(self, max_bytes):
        chunk = bytes(self.rx[:max_bytes])
        self.rx = self.rx[max_bytes:]
        return chunk

    def write(self, data):
        self.tx.extend(data)


class StdioServicePort(hal.ServicePort):
    """stdin/stdout as the service link; ``closed`` once the host end hangs up."""

    def __init__(self):
        self.closed = False
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        try:
            import os
            self._os_read = os.read          # CPython: unbuffered read of what is there
            self._fd = sys.stdin.fileno()
        except (ImportError, AttributeError):
            self._os_read = None             # MicroPython unix: stdin.buffer is unbuffered

    def read(self, max_bytes):
        if self.closed:
            return b""
        out = b""
        while len(out) < max_bytes:
            events = self._poll.poll(0)
            if not events:
                break
            flags = events[0][1]
            if not flags & select.POLLIN:
                if flags & (select.POLLHUP | select.POLLERR):
                    self.closed = True
                break
            if self._os_read is not None:
                chunk = self._os_read(self._fd, max_bytes - len(out))
            else:
                chunk = self._in.read(1)
            if not chunk:
                self.closed = True
                break
            out += chunk
        return out

    def write(self, data):
        self._out.write(data)
        self._out.flush()
