"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class EdgemlError(Exception):
    """A failure the user can fix; ``str()`` names the problem and the fix."""

    exit_code = 1


class InputError(EdgemlError):
    """Bad input: file, data, model or option. Exit code 2, like a usage error."""

    exit_code = 2


class ConfigError(InputError):
    """Invalid configuration key, type or value."""
