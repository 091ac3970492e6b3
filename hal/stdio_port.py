"""``hal.ServicePort`` on stdin/stdout: USB CDC on the RP2040, pipes for the virtual pump.

Owns non-blocking byte transport over the interpreter's standard streams, under
MicroPython (device and unix port) and CPython alike.  On a MicroPython board it
also disables Ctrl-C on the stream (``micropython.kbd_intr(-1)``) so binary
frames containing 0x03 can never interrupt the firmware (SR-SVC-4; the
production build also removes the REPL from the port).
"""
import sys

import hal

try:
    import select
except ImportError:  # pragma: no cover
    import uselect as select  # type: ignore[no-redef]


class StdioServicePort(hal.ServicePort):
    """stdin/stdout as the service link; ``closed`` once the host end hangs up."""

    def __init__(self, disable_ctrl_c=False):
        self.closed = False
        if disable_ctrl_c:
            import micropython
            micropython.kbd_intr(-1)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        try:
            import os
            self._os_read = os.read          # CPython: unbuffered read of what is there
            self._fd = sys.stdin.fileno()
        except (ImportError, AttributeError):
            self._os_read = None  # type: ignore[assignment]  # MicroPython: unbuffered stdin

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
