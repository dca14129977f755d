"""What the subcommands share: logging, progress bars, the log file in each output."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kmervae.io.atomic import remove_path, temporary_name
from kmervae.io.dataset import DatasetWriter
from kmervae.provenance import run_provenance

_CONSOLE_FORMAT = "%(levelname)s: %(message)s"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_common_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output and logging")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more messages (repeat for debug output)"
    )
    group.add_argument(
        "-q", "--quiet", action="count", default=0, help="fewer messages, no progress bar"
    )
    group.add_argument("--force", action="store_true", help="replace outputs that exist")


def int_list(text: str) -> tuple[int, ...]:
    """argparse type for comma-separated integers such as ``5,4,3,2,1``."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def float_list(text: str) -> tuple[float, ...]:
    """argparse type for comma-separated numbers such as ``1.4,2,3``."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format native|legacy`` for commands that write profile datasets."""
    parser.add_argument(
        "--format",
        choices=("native", "legacy"),
        default="native",
        dest="fmt",
        help="native dataset folder (default) or the legacy float32 NAME.npy (length + "
        "features) + NAME.txt ids pair",
    )


def setup_console_logging(verbosity: int) -> None:
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}.get(
        min(verbosity, 1), logging.DEBUG
    )
    if verbosity < -2:
        level = logging.CRITICAL
    root = logging.getLogger("kmervae")
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_kmervae_console", False):
            root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
    console._kmervae_console = True  # type: ignore[attr-defined]
    root.addHandler(console)


class LogFile:
    """A full (debug) log written into an output directory for the span of a command."""

    def __init__(self, path: Path, args: argparse.Namespace, seed: int | None = None):
        self.handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        self.handler.setLevel(logging.DEBUG)
        self.handler.setFormatter(logging.Formatter(_FILE_FORMAT))
        logging.getLogger("kmervae").addHandler(self.handler)
        self.provenance: dict[str, Any] = run_provenance(getattr(args, "argv", None), seed)
        log = logging.getLogger("kmervae")
        log.debug("kmervae %s", self.provenance["kmervae_version"])
        log.debug("command: %s", " ".join(self.provenance["command"]))
        log.debug("seed: %s", seed)

    def close(self) -> None:
        logging.getLogger("kmervae").removeHandler(self.handler)
        self.handler.close()


class OutputLogs:
    """Log files for the datasets a command writes, one per output.

    A native dataset gets ``kmervae.log`` inside its (temporary) folder, so it moves in with
    the dataset; legacy output gets ``NAME.log`` beside ``NAME.npy``, written under a
    temporary name and moved in by :meth:`close` only when the command succeeded.
    """

    def __init__(self, args: argparse.Namespace, seed: int | None = None):
        self.args = args
        self.seed = seed
        self._files: list[LogFile] = []
        self._pending: list[tuple[Path, Path]] = []

    def attach(self, writer: DatasetWriter) -> None:
        if writer.fmt == "native":
            target = writer.directory / "kmervae.log"
        else:
            final = writer.npy_path.with_suffix(".log")
            target = temporary_name(final)
            self._pending.append((target, final))
        self._files.append(LogFile(target, self.args, self.seed))

    def close(self, success: bool) -> None:
        for logfile in self._files:
            logfile.close()
        for tmp, final in self._pending:
            if success:
                os.replace(tmp, final)
            else:
                remove_path(tmp)
        self._files, self._pending = [], []


def progress_bar(
    args: argparse.Namespace, total: int | None, unit: str = "B", desc: str = ""
) -> tqdm:
    """A tqdm bar on stderr, off when stderr is not a terminal or with -q."""
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        desc=desc,
        disable=args.quiet > 0 or not sys.stderr.isatty(),
        leave=False,
        file=sys.stderr,
    )
