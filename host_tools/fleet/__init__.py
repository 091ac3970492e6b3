"""Fleet archive (SR-SVC-5): pulled pump logs in one database, keyed by pump serial and
sequence number, each record once, verified on insert.

``db.py`` owns the connection and the versioned schema, ``archive.py`` the import and the
queries, ``cli.py`` the ``pumpctl fleet`` commands.  Schema: ``docs/FLEET_ARCHIVE.md``.
"""
