"""The one exception family that the CLI turns into a single line on stderr and exit code 2."""


class LlamaCPUError(Exception):
    """Bad input from a user: a missing or corrupt file, text that is not a problem, and so on."""
