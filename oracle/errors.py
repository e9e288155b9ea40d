"""Errors the oracle raises for bad input; the command line prints them on one line."""


class OracleError(Exception):
    """A problem the user can fix; ``str(error)`` is a one-line message that says how."""


class InputError(OracleError):
    """A file, value or option that cannot be used (names the file and line, or the key)."""


class DatabaseError(OracleError):
    """The database cannot be reached or migrated."""
