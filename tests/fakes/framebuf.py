"""Fake of MicroPython's ``framebuf`` for CPython tests (the unix and rp2 ports have it).

Owns just what ``hal.pin_devices.Ssd1306Display`` uses: a MONO_VLSB FrameBuffer that
fills and draws text into a bytearray (text is recorded, not rasterised).
"""
MONO_VLSB = 0


class FrameBuffer:
    def __init__(self, buf, width, height, fmt):
        self.buf = buf
        self.texts = []

    def fill(self, c):
        for i in range(len(self.buf)):
            self.buf[i] = 0xFF if c else 0
        self.texts = []

    def text(self, s, x, y, c=1):
        self.texts.append((x, y, s))
