"""Drug-library tools for the pharmacist (SR-LIB-1, SR-LIB-2, SR-TH-3, PT-7).

Owns the host side of the drug library: reading the pharmacist's source (CSV or
JSON, ``source``), the published JSON Schema (``docs/drug_library.schema.json``),
every semantic rule with row-and-field messages (``check``), the compact signed
binary (``compiler``), reading a binary back and comparing two libraries
(``show``, ``diff``) and the ``pumpctl library`` commands (``cli``).  The binary
is decoded with the pump's own reader, ``firmware/druglib.py``, so the host and
the pump cannot disagree on the format.  Format: ``docs/DRUG_LIBRARY.md``.
"""
