"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""


class KmervaeError(Exception):
    """A problem with the input or the request, explained in one line."""


class InputError(KmervaeError):
    """Malformed or inconsistent input data; the message names the file and record."""


class OutputExistsError(KmervaeError):
    """An output is there already and the request does not replace it (``overwrite``).

    ``resumable``: the output is a training run, which ``resume`` continues. The message
    names the parameters; the command line names its own options instead.
    """

    def __init__(self, path: object, *, resumable: bool = False):
        self.path = path
        self.resumable = resumable
        remedy = (
            "resume continues it, overwrite starts over" if resumable else "overwrite replaces it"
        )
        super().__init__(f"{path} already exists ({remedy})")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``timeout`` send) arrived: unwind and clean up like Ctrl-C."""
