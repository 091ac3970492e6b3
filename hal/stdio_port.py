"""``hal.ServicePort`` on stdin/stdout: USB CDC on the RP2040, pipes for the virtual pump.

Owns non-blocking byte transport over the interpreter's standard streams, under
MicroPython (device and unix port) and CPython alike.  On a MicroPython board it
also disables Ctrl-C on the stream (``micropython.kbd_intr(-1)``) so binary
frames containing 0x03 can never interrupt the firmware (SR-SVC-4; the
production build also removes the REPL from the port).

Port differences it handles: on the rp2 port ``sys.stdout.buffer`` is the
``stdio_buffer_obj`` of ``shared/runtime/sys_stdio_mphal.c``, whose methods are
read/readinto/readline/write/close and *no* ``flush`` (writes go straight to
USB CDC); CPython's is a ``BufferedWriter`` that must be flushed.  So ``write``
flushes only where the stream has a ``flush``.
"""
import sys

import hal

try:
    import select
except ImportError:  # pragma: no cover
    import uselect as select  # type: ignore[no-redef]


class StdioServicePort(hal.ServicePort):
    """stdin/stdout as the service link; ``closed`` once the host end hangs up."""

    def __init__(self, disable_ctrl_c=False, stdin=None, stdout=None):
        self.closed = False
        if disable_ctrl_c:
            import micropython
            micropython.kbd_intr(-1)
        stdin = stdin if stdin is not None else sys.stdin
        self._in = stdin.buffer
        self._out = stdout if stdout is not None else sys.stdout.buffer
        self._flush = getattr(self._out, "flush", None)   # absent on the rp2 port
        self._poll = select.poll()
        self._poll.register(stdin, select.POLLIN)
        self._ipoll = getattr(self._poll, "ipoll", None)   # MicroPython only
        self._buf = bytearray(0)          # grows once to the largest read asked for
        self._one = bytearray(1)
        # Writes must not stall the control cycle: on rp2 a write to a USB CDC port whose
        # host has stopped reading waits up to MICROPY_HW_USB_CDC_TX_TIMEOUT (500 ms) per
        # call (shared/tinyusb/mp_usbd_cdc.c); its poll gives POLLOUT only while the TX
        # FIFO has room.  A reply the host is not reading is dropped and counted.
        self.dropped = 0
        self._out_ipoll = None
        self._out_poll = None  # type: ignore[assignment]
        if stdout is None:
            try:
                out_poll = select.poll()
                out_poll.register(sys.stdout, select.POLLOUT)
                self._out_poll = out_poll
                self._out_ipoll = getattr(out_poll, "ipoll", None)
            except (AttributeError, OSError, TypeError, ValueError):
                self._out_poll = None  # type: ignore[assignment]
        try:
            import os
            self._os_read = os.read          # CPython: unbuffered read of what is there
            self._fd = stdin.fileno()
        except (ImportError, AttributeError):
            self._os_read = None  # type: ignore[assignment]  # MicroPython: unbuffered stdin

    def read(self, max_bytes):
        """What has arrived, at most ``max_bytes``; b'' when nothing (never blocks).

        Bytes are gathered into one buffer allocated once; on MicroPython stdin is
        read one byte at a time into a 1-byte buffer (``readinto`` on the rp2 stdio
        stream blocks until its buffer is full, so never ask for more than is there)."""
        if self.closed:
            return b""
        if len(self._buf) < max_bytes:
            self._buf = bytearray(max_bytes)
        buf = self._buf
        n = 0
        while n < max_bytes:
            flags = self._ready_flags()
            if not flags:
                break
            if not flags & select.POLLIN:
                if flags & (select.POLLHUP | select.POLLERR):
                    self.closed = True
                break
            if self._os_read is not None:
                chunk = self._os_read(self._fd, max_bytes - n)
                got = len(chunk)
                buf[n:n + got] = chunk
            else:
                got = self._in.readinto(self._one)
                if got:
                    buf[n] = self._one[0]
            if not got:
                self.closed = True
                break
            n += got
        if not n:
            return b""
        return bytes(memoryview(buf)[:n])

    def _ready_flags(self):
        """Poll flags of stdin now, 0 when nothing is waiting.  MicroPython's ``ipoll``
        allocates nothing after its first call; ``poll`` builds a list every call."""
        if self._ipoll is not None:
            for entry in self._ipoll(0):
                return entry[1]
            return 0
        events = self._poll.poll(0)
        return events[0][1] if events else 0

    def _writable(self):
        if self._out_poll is None:
            return True
        if self._out_ipoll is not None:
            for entry in self._out_ipoll(0):
                return entry[1] & select.POLLOUT
            return False
        events = self._out_poll.poll(0)
        return bool(events) and events[0][1] & select.POLLOUT

    def write(self, data):
        if not self._writable():
            self.dropped += 1             # the host is not reading: never block the cycle
            return
        self._out.write(data)
        if self._flush is not None:
            self._flush()
