"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""


class KmervaeError(Exception):
    """A problem with the input or the request, explained in one line."""


class InputError(KmervaeError):
    """Malformed or inconsistent input data; the message names the file and record."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``timeout`` send) arrived: unwind and clean up like Ctrl-C."""
