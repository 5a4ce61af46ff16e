"""The one exception type for bad input."""


class UserError(Exception):
    """Bad input (config, data, arguments, files): the CLI prints its message, without a traceback,
    and exits with status 2. Messages name the file, key or value and what was expected."""
