"""The ``kmervae`` program (the console script and ``python -m kmervae``)."""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn


def run() -> NoReturn:
    """Run :func:`kmervae.cli.main` and exit with its status.

    Ctrl-C while the program is still starting ends it with one line, as later. A signal that
    arrives once the command has finished cannot turn a complete result into a killed
    process: the signals are ignored from then on. An interrupted command ends with exactly
    130 (SIGINT) or 143 (SIGTERM), even where Python would re-raise the signal at its exit.
    """
    try:
        from kmervae.cli import main
    except KeyboardInterrupt:
        print("kmervae: interrupted", file=sys.stderr)
        os._exit(130)
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
