"""The ``kmervae`` command line: one module per subcommand."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import sys
from pathlib import Path
from types import FrameType

from kmervae._version import __version__
from kmervae.cli import (
    chop,
    cluster,
    compare,
    concat,
    demo,
    embed,
    evaluate,
    export,
    fit_pca,
    import_keras,
    index,
    knn,
    map,
    pipeline,
    profile,
    report,
    search,
    train,
)
from kmervae.cli._common import KmervaeParser, setup_console_logging
from kmervae.errors import KmervaeError, OutputExistsError, Terminated
from kmervae.io.atomic import remove_own_temporaries

SUBCOMMANDS = (
    profile,
    concat,
    chop,
    train,
    fit_pca,
    embed,
    import_keras,
    export,
    evaluate,
    index,
    search,
    knn,
    cluster,
    map,
    compare,
    report,
    pipeline,
    demo,
)


#: the exit status when the reader of stdout went away (``kmervae search ... | head``): 128 +
#: SIGPIPE, what a shell reports for a program that SIGPIPE ended
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = KmervaeParser(
        prog="kmervae",
        description="Embed metagenomic contigs in a VAE space of multi-scale k-mer composition.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"kmervae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def describe_os_error(exc: OSError, args: argparse.Namespace) -> str:
    """``FILE: reason`` for an operating-system error. Errors raised without a file name (a
    full disk met by a library's write) are put on the command's output, the file being
    written."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        both = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else f"{exc.filename}"
        return f"{both}: {reason}"
    output = getattr(args, "output", None)
    return f"{output}: {reason}" if output is not None else str(exc)


#: set when SIGTERM arrives. The handler also raises :class:`Terminated`, but Python ignores
#: an exception raised where it cannot propagate (a weakref callback, ``__del__``), so a
#: command that finished anyway checks this too (:func:`stop_if_terminated`).
_terminated = False


def _terminate(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    raise Terminated


def stop_if_terminated() -> None:
    """Raise :class:`Terminated` if SIGTERM arrived during this command, even where its
    handler's exception was lost."""
    if _terminated:
        raise Terminated


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone (``| head`` that has read enough)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):  # not a file (tests), no poll()
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


def _silence_stdout() -> None:
    """Send what is still buffered for stdout to /dev/null, as Python's documentation
    advises: Python flushes stdout once more at exit and would report the broken pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _stdout_finished() -> bool:
    """Flush stdout; False, quietly, when its reader has gone."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_gone():
            raise
        _silence_stdout()
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 error, 2 usage, 130 after
    Ctrl-C, 141 when the reader of stdout went away, 143 after SIGTERM)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version, a usage error
        if not _stdout_finished():
            return EXIT_BROKEN_PIPE
        raise
    setup_console_logging(args.verbose - args.quiet)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    previous = None
    global _terminated
    _terminated = False
    # SIGTERM unwinds like Ctrl-C: temporary outputs are removed on the way out (ValueError:
    # main() was called from a thread other than the main one)
    with contextlib.suppress(ValueError):
        previous = signal.signal(signal.SIGTERM, _terminate)
    code = 1
    try:
        code = int(args.run(args))
        stop_if_terminated()
        if not _stdout_finished():
            code = EXIT_BROKEN_PIPE
    except BrokenPipeError as exc:
        if _stdout_gone():
            _silence_stdout()
            code = EXIT_BROKEN_PIPE
        else:  # a pipe to another program
            print(f"kmervae {args.command}: error: {describe_os_error(exc, args)}", file=sys.stderr)
    except OutputExistsError as exc:  # the library names its parameters, this its options
        remedy = (
            "use --resume to continue it or --force to start over"
            if exc.resumable
            else "use --force to replace it"
        )
        message = f"{exc.path} already exists ({remedy})"
        print(f"kmervae {args.command}: error: {message}", file=sys.stderr)
    except KmervaeError as exc:
        print(f"kmervae {args.command}: error: {exc}", file=sys.stderr)
    except OSError as exc:  # disk full, permissions, a vanished file
        print(f"kmervae {args.command}: error: {describe_os_error(exc, args)}", file=sys.stderr)
    except Terminated:
        print(f"kmervae {args.command}: terminated (SIGTERM)", file=sys.stderr)
        code = 143
    except KeyboardInterrupt:
        print(f"kmervae {args.command}: interrupted", file=sys.stderr)
        code = 130
    finally:
        if code != 0:
            _remove_own_temporaries(args)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        logging.shutdown()
    return code


#: the options that name a command's outputs
_OUTPUT_OPTIONS = ("output", "tsv", "json", "write_bins")


def _remove_own_temporaries(args: argparse.Namespace) -> None:
    """After a failed or interrupted command, what it left beside its outputs goes."""
    folders = set()
    for name in _OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str | Path) and str(value) not in ("", "-"):
            folders.add(Path(value).parent)
    for folder in folders:
        with contextlib.suppress(OSError, KeyboardInterrupt):
            remove_own_temporaries(folder)
