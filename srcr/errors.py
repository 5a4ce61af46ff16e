"""The exception types the CLI turns into a message and an exit status instead of a traceback."""

# Exit status of a run stopped by a signal after saving its state (EX_TEMPFAIL: run it again).
EXIT_INTERRUPTED = 75


class UserError(Exception):
    """Bad input (config, data, arguments, files): the CLI prints its message, without a traceback,
    and exits with status 2. Messages name the file, key or value and what was expected."""


class RunInterrupted(Exception):
    """A run stopped on request (SIGTERM, SIGUSR1) after writing a checkpoint: the CLI prints the
    message and exits with EXIT_INTERRUPTED; the same command resumes from the checkpoint."""

    exit_status = EXIT_INTERRUPTED
