"""The pump application (channel B), MicroPython-portable."""
