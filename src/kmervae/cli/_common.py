"""What the subcommands share: the parser, the options every command spells alike
(``-o/--output``, ``-k/--neighbours``, ``-t/--threads``, ``-v/-q/--force``), logging, progress
bars, the log file in each output."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kmervae.errors import KmervaeError
from kmervae.io.atomic import remove_path, temporary_name
from kmervae.io.dataset import DatasetWriter
from kmervae.model.device import check_device_name
from kmervae.provenance import run_provenance

_CONSOLE_FORMAT = "%(levelname)s: %(message)s"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class KmervaeParser(argparse.ArgumentParser):
    """The parser of every command and subcommand: long options are never abbreviated
    (``--nprob`` is refused, not read as ``--nprobe``), and an unknown option is reported
    with the usage of the (sub)command it was given to.

    Sub-parsers made with ``add_subparsers`` are of this class too (argparse makes them of
    their parent's class), so the rules hold at every level.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        # argparse hands a subcommand's unknown options up to the top parser, which would
        # print its own usage; the chosen subcommand reports them instead
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            chosen_parser(self, parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def chosen_parser(
    parser: argparse.ArgumentParser, namespace: argparse.Namespace
) -> argparse.ArgumentParser:
    """The innermost (sub)command parser that ``namespace`` went through."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(namespace, action.dest, None)
            if name in action.choices:
                return chosen_parser(action.choices[name], namespace)
    return parser


def add_common_options(
    parser: argparse.ArgumentParser, force_help: str = "replace outputs that exist"
) -> None:
    group = parser.add_argument_group("output and logging")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more messages (repeat for debug output)"
    )
    group.add_argument(
        "-q", "--quiet", action="count", default=0, help="fewer messages, no progress bar"
    )
    group.add_argument("--force", action="store_true", help=force_help)


class Bounded:
    """argparse type for a number with a range, checked when the command line is read.

    ``Bounded(int, 1)`` takes integers >= 1; ``Bounded(float, 0, 1, high_open=True)`` takes
    numbers in [0, 1). An out-of-range value ends the command with one usage line naming the
    option, before anything is loaded or written.
    """

    def __init__(
        self,
        kind: type = int,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
    ):
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open = low_open, high_open
        self.__name__ = "integer" if kind is int else "number"  # argparse's "invalid X value"

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_plain(self.low)}, {_plain(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_plain(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_plain(self.high)}"
        return "a finite number"

    def check(self, value: float, text: str) -> None:
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")

    def __call__(self, text: str) -> Any:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if self.kind is int else 'a number'}, got {text!r}"
            ) from None
        self.check(value, text)
        return value


class BoundedList(Bounded):
    """argparse type for comma-separated numbers such as ``5,4,3,2,1``, each in a range."""

    def __call__(self, text: str) -> Any:
        try:
            values = tuple(self.kind(x) for x in text.split(","))
        except ValueError:
            kind = "integers" if self.kind is int else "numbers"
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind}, got {text!r}"
            ) from None
        for value in values:
            self.check(value, text)
        return values


class _KGroups(BoundedList):
    """Comma-separated k-groups such as ``5,4,3,2,1``: each in 1..6, none twice."""

    def __call__(self, text: str) -> Any:
        values = super().__call__(text)
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"k-groups must be distinct, got {text!r}")
        return values


def length_range(text: str) -> tuple[int, int]:
    """A length in bp, ``LENGTH`` or ``MIN-MAX``, as (MIN, MAX)."""
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
        else:
            lo = hi = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LENGTH or MIN-MAX in bp, got {text!r}"
        ) from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"must satisfy 1 <= MIN <= MAX bp, got {text!r}")
    return lo, hi


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# The ranges the commands share.
positive_int = Bounded(int, 1)
non_negative_int = Bounded(int, 0)
positive_float = Bounded(float, 0, low_open=True)
non_negative_float = Bounded(float, 0)
fraction = Bounded(float, 0, 1, low_open=True, high_open=True)
seed_type = Bounded(int, 0, 2**32 - 1)
threads_type = Bounded(int, 0, 4096)
int_list = BoundedList(int)
positive_int_list = BoundedList(int, 1)
float_list = BoundedList(float)
positive_float_list = BoundedList(float, 0, low_open=True)
DPI = Bounded(int, 10, 2400)
k_groups = _KGroups(int, 1, 6)


def add_device_option(parser: Any, help_text: str) -> None:
    """``--device``: ``auto`` (the default), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; the
    name is checked when the command line is read, the hardware when the command runs."""

    def device_name(text: str) -> str:
        try:
            check_device_name(text)
        except KmervaeError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    device_name.__name__ = "device"  # what argparse calls the type in its messages
    parser.add_argument(
        "--device", type=device_name, default="auto", metavar="DEVICE", help=help_text
    )


def add_threads_option(parser: Any, what: str = "threads") -> None:
    """``-t/--threads N``, the same in every command: 0 (the default) is all cores (those
    this process may use). ``parser``: a parser or an argument group."""
    parser.add_argument(
        "-t",
        "--threads",
        type=threads_type,
        default=0,
        metavar="N",
        help=f"{what}, 0 to 4096 (default: 0, all cores)",
    )


def add_neighbours_option(
    parser: Any,
    help: str,
    *,
    type: Any = None,
    default: Any = None,
    metavar: str = "K",
    dest: str = "k",
) -> None:
    """``-k/--neighbours``, the spelling of every neighbour count. ``parser``: a parser or an
    argument group; ``type``: :data:`positive_int` unless given."""
    parser.add_argument(
        "-k",
        "--neighbours",
        dest=dest,
        type=type or positive_int,
        default=default,
        metavar=metavar,
        help=help,
    )


def add_colour_options(group: Any, *, clusters_from: str, labels_note: str = "") -> None:
    """``--color WHAT``, ``--labels TSV`` and ``--top N``: how a map is coloured (``kmervae
    map`` and ``kmervae report`` spell them alike). ``clusters_from`` says where the
    clusters come from; ``labels_note`` ends the help of ``--labels``."""
    group.add_argument(
        "--color",
        metavar="WHAT",
        help=f"gc (default), length, cluster ({clusters_from}; the default when given) or a "
        "column of --labels (default with --labels: its first column)",
    )
    group.add_argument(
        "--labels",
        type=Path,
        metavar="TSV",
        help="labels: a header line, the contig id first, then one column per label" + labels_note,
    )
    group.add_argument(
        "--top",
        type=positive_int,
        default=20,
        metavar="N",
        help="clusters or labels named in the legend, the most frequent (default 20; the "
        "rest grey)",
    )


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


class _QuietFileHandler(logging.FileHandler):
    """A log file that cannot be written (a full disk) is passed over in silence: the
    command's own output meets the same error and reports it in one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class LogFile:
    """A full (debug) log written into an output directory for the span of a command."""

    def __init__(self, path: Path, args: argparse.Namespace, seed: int | None = None):
        self.handler = _QuietFileHandler(path, mode="a", encoding="utf-8")
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
