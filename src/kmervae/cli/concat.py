"""``kmervae concat``: join, shuffle and split profile datasets."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from kmervae.cli._common import (
    Bounded,
    OutputLogs,
    add_common_options,
    add_format_option,
    fraction,
    progress_bar,
    seed_type,
)
from kmervae.io.concat import DEFAULT_MEMORY_MB, concat_datasets
from kmervae.io.dataset import DatasetWriter
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)

#: the smallest shuffle bucket worth having (MiB): below it the buckets outnumber the rows
MIN_MEMORY_MB = 0.01


def _physical_memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20))
    except (ValueError, OSError, AttributeError):
        return 1 << 30  # unknown: no practical bound


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "concat",
        help="join, shuffle and split profile datasets",
        description=(
            "Join profile datasets (native folders, or legacy NAME.npy with ids in NAME.txt or "
            "NAME.txt.gz) that share one feature layout into one dataset, in input order or "
            "shuffled out of core; optionally split it into OUT.train and OUT.validation. "
            "Record ids must be unique across the inputs."
        ),
    )
    parser.add_argument(
        "datasets",
        nargs="+",
        metavar="DATASET",
        help="native dataset folders or legacy NAME.npy files",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help="output dataset: a folder (native) or NAME for NAME.npy + NAME.txt (legacy); with "
        "--split, OUT.train and OUT.validation",
    )
    add_format_option(parser)
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default=None,
        help="feature type on disk (default: the first input's; legacy: float32 only)",
    )
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="write the rows in a random order (out of core: memory does not grow with size)",
    )
    parser.add_argument(
        "--split",
        type=fraction,
        default=None,
        metavar="FRACTION",
        help="write OUT.train with round(FRACTION x N) rows and OUT.validation with the rest; "
        "FRACTION in (0, 1) "
        "(with --shuffle: the first rows of the shuffled order; otherwise a seeded random "
        "subset, each side in input order)",
    )
    parser.add_argument(
        "--seed",
        type=seed_type,
        default=42,
        help="seed of --shuffle and --split, 0 to 2^32-1 (default: 42)",
    )
    parser.add_argument(
        "--prefix-ids",
        action="store_true",
        help="prefix each id with its dataset's stem (STEM_ID) to make ids unique",
    )
    parser.add_argument(
        "--memory",
        type=Bounded(float, MIN_MEMORY_MB, _physical_memory_mb()),
        default=DEFAULT_MEMORY_MB,
        metavar="MB",
        help=f"memory for one shuffle bucket, in MiB, from {MIN_MEMORY_MB:g} to this machine's "
        f"memory (default: {DEFAULT_MEMORY_MB:g}); the shuffle's result does not depend on it",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    seed = args.seed if (args.shuffle or args.split is not None) else None
    bar = progress_bar(args, None, unit="rows", desc="concat")
    logs = OutputLogs(args, seed)

    def attach_log(writer: DatasetWriter) -> None:
        logs.attach(writer)
        log.debug("inputs: %s", ", ".join(args.datasets))

    def advance(rows: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(rows)

    done = False
    try:
        summary = concat_datasets(
            args.datasets,
            args.output,
            fmt=args.fmt,
            dtype=args.dtype,
            shuffle=args.shuffle,
            seed=seed,
            split=args.split,
            prefix_ids=args.prefix_ids,
            overwrite=args.force,
            memory_mb=args.memory,
            provenance=run_provenance(args.argv, seed),
            progress=advance,
            on_writer=attach_log,
        )
        bar.close()
        for path, rows in zip(summary.outputs, summary.rows_per_output, strict=True):
            log.info("%d rows written to %s", rows, path)
        log.info(
            "%d rows from %d datasets in %.1f s%s",
            summary.n_rows,
            summary.n_inputs,
            summary.seconds,
            f" (seed {summary.seed})" if summary.seed is not None else "",
        )
        done = True
    finally:
        bar.close()
        logs.close(done)
    return 0
