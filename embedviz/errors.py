"""Errors that embedviz raises for bad input.

:class:`EmbedvizError` is for problems the user can fix (a missing file, NaN in the
vectors, a perplexity too large for the data). The command line prints its message
on one line and exits with status 2, without a traceback; anything else is a bug and
keeps its traceback.
"""


class EmbedvizError(Exception):
    """A problem with the user's input or settings; the message says what to do."""


class InputError(EmbedvizError, ValueError):
    """Bad data or parameter values (also a ValueError, as scikit-learn raises)."""


class FileFormatError(EmbedvizError, ValueError):
    """A file that is missing, truncated, or not in the format it claims."""


class StorageFullError(InputError):
    """A bounded storage that cannot take a record without dropping another's (the
    remote receiver answers 507: the sender keeps the records and tries again)."""


class StatsWriteError(EmbedvizError, OSError):
    """A statistics file that cannot be written now (disk full, locked, an I/O error),
    raised by ``flush()``/``close()`` of :class:`~embedviz.stats.storage.SQLiteStatsStorage`
    (``put`` never raises it: training goes on); the records not written stay buffered,
    and the message says how many and what to do.

    Attributes: ``path`` (the file, a :class:`~pathlib.Path`), ``cause`` (why, as text:
    ``"OperationalError: database is locked"``) and ``unwritten`` (how many records are
    not written), for callers that phrase their own message."""
