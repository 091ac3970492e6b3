"""Host-side tools (CPython): pumpctl for technicians and pharmacists."""
