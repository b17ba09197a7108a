"""A test helper: another connection holding an SQLite file's write lock (imported by
the tests of a statistics file that fails; not a test module)."""

import sqlite3


class Lock:
    """Another connection holding the file's write lock (``BEGIN EXCLUSIVE``)."""

    def __init__(self, path):
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.execute("BEGIN EXCLUSIVE")

    def release(self):
        if self.con is not None:
            self.con.execute("ROLLBACK")
            self.con.close()
            self.con = None
