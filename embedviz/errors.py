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
