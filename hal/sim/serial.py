"""Service-port backends off the device: in-memory queues and stdin/stdout.

Owns byte transport only (framing is ``firmware/protocol.py``).
``QueueServicePort`` is for tests: ``feed()`` bytes in, ``drain()`` replies out.
``StdioServicePort`` (hal/stdio_port.py) is the virtual pump's port; the
``pumpctl sim`` bridge connects its pipes to a pseudo-terminal.
"""
import hal
from hal.stdio_port import StdioServicePort  # noqa: F401  (re-exported for the sim)


class QueueServicePort(hal.ServicePort):
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def feed(self, data):
        self.rx.extend(data)

    def drain(self):
        out = bytes(self.tx)
        self.tx[:] = b""        # emptied in place: write() reuses its room
        return out

    def read(self, max_bytes):
        rx = self.rx
        if not rx:
            return b""
        if len(rx) <= max_bytes:            # the usual case: one copy, emptied in place
            chunk = bytes(rx)
            rx[:] = b""
        else:
            chunk = bytes(rx[:max_bytes])
            rx[:max_bytes] = b""
        return chunk

    def write(self, data):
        self.tx.extend(data)
