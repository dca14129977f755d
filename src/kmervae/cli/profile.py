"""``kmervae profile``: canonical 6…1-mer profiles of FASTA records."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import (
    OutputLogs,
    add_common_options,
    add_format_option,
    add_threads_option,
    non_negative_int,
    progress_bar,
)
from kmervae.cores import available_threads
from kmervae.io.dataset import DatasetWriter
from kmervae.kmers.layout import FEATURE_LAYOUT
from kmervae.kmers.profile import ProfileSummary, profile_fasta
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "profile",
        help="k-mer profiles of FASTA records",
        description=(
            f"Canonical 6- to 1-mer frequency profiles ({FEATURE_LAYOUT.n_features} features) "
            "of every FASTA record, plus length, ambiguous-base count and GC fraction. "
            "Input may be plain, gzip, bzip2, xz or zstd (detected from the content); "
            "'-' reads stdin."
        ),
    )
    parser.add_argument("fasta", nargs="+", metavar="FASTA", help="input FASTA files ('-': stdin)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help="output dataset: a folder (native) or NAME for NAME.npy + NAME.txt (legacy)",
    )
    parser.add_argument(
        "--min-length",
        type=non_negative_int,
        default=0,
        metavar="BP",
        help="skip records shorter than this (default: 0, keep all)",
    )
    add_threads_option(parser, "profiling threads")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="feature type on disk (native format only; default: float32)",
    )
    add_format_option(parser)
    parser.add_argument(
        "--prefix-ids",
        action="store_true",
        help="prefix each id with its file's stem and '_' (STEM_ID) to make ids unique across "
        "files",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    threads = args.threads or available_threads()
    total = sum(Path(p).stat().st_size for p in args.fasta if p != "-" and Path(p).is_file())
    bar = progress_bar(args, total or None, desc="profile")
    logs = OutputLogs(args)

    def attach_log(writer: DatasetWriter) -> None:
        logs.attach(writer)
        log.debug("inputs: %s", ", ".join(args.fasta))

    done = False
    try:
        summary = profile_fasta(
            args.fasta,
            args.output,
            min_length=args.min_length,
            threads=threads,
            dtype=args.dtype,
            fmt=args.fmt,
            prefix_ids=args.prefix_ids,
            overwrite=args.force,
            provenance=run_provenance(args.argv),
            progress=bar.update,
            on_writer=attach_log,
        )
        bar.close()
        _report(summary, args.min_length)
        done = True
    finally:
        bar.close()
        logs.close(done)
    return 0


def _report(summary: ProfileSummary, min_length: int) -> None:
    for source in summary.sources:
        log.debug(
            "input %s: %s, %d bytes, sha256 %s, %d records",
            source["name"],
            source["compression"],
            source["bytes"],
            source["sha256"],
            source["records"],
        )
    mbp = summary.bases / 1e6
    log.info(
        "%d records, %.1f Mbp in %.1f s (%.0f Mbp/s); %d rows written to %s",
        summary.n_records,
        mbp,
        summary.seconds,
        mbp / max(summary.seconds, 1e-9),
        summary.n_rows,
        summary.output,
    )
    if summary.n_short:
        log.info("%d records shorter than %d bp skipped", summary.n_short, min_length)
    if summary.n_without_kmers:
        log.warning(
            "%d record(s) have fewer than 6 A/C/G/T bases: some of their k-groups are all zeros",
            summary.n_without_kmers,
        )
