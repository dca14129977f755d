"""``kmervae chop``: cut genomes into contigs for training sets and benchmarks."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import (
    add_common_options,
    length_range,
    non_negative_int,
    positive_int,
    seed_type,
)
from kmervae.errors import KmervaeError
from kmervae.io.chop import ChopSpec, chop_genomes
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chop",
        help="cut genomes into contigs",
        description="Cut every record of the genome FASTA files (plain or compressed) into "
        "contigs of a fixed length or of seeded random lengths in a range. Contig ids are "
        "RECORD.N (N counts from 1 within each record).",
    )
    parser.add_argument("genomes", nargs="+", metavar="GENOME", help="genome FASTA files")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="FASTA",
        help="output FASTA (gzip-compressed if the name ends in .gz)",
    )
    parser.add_argument(
        "-l",
        "--length",
        type=length_range,
        default=(5000, 5000),
        metavar="BP|MIN-MAX",
        help="contig length, or a range for uniform random lengths (default: 5000)",
    )
    parser.add_argument(
        "--min-length",
        type=positive_int,
        default=None,
        metavar="BP",
        help="drop pieces shorter than this, i.e. record ends (default: the lower contig length)",
    )
    parser.add_argument("--seed", type=seed_type, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        metavar="TSV",
        help="also write contig id, file, record, start, end, length (header first; "
        "provenance in TSV.json)",
    )
    parser.add_argument(
        "--prefix-ids",
        action="store_true",
        help="prefix each id with its file's stem and '_' (STEM_RECORD.N) to make ids unique "
        "across files",
    )
    parser.add_argument(
        "--line-width",
        type=non_negative_int,
        default=80,
        help="FASTA line width, 0 for one line per sequence (default: 80)",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    lo, hi = args.length
    if args.min_length is not None and args.min_length > lo:
        raise KmervaeError(
            f"--min-length must be at most the lower contig length ({lo}), got {args.min_length}"
        )
    spec = ChopSpec(lo, hi, args.min_length if args.min_length is not None else lo, args.seed)
    if args.table is not None and args.table == args.output:
        raise KmervaeError("--table must differ from the output FASTA")
    counts = chop_genomes(
        args.genomes,
        args.output,
        spec,
        table=args.table,
        prefix_ids=args.prefix_ids,
        line_width=args.line_width,
        overwrite=args.force,
        provenance=run_provenance(args.argv, args.seed),
    )
    log.info(
        "%d records cut into %d contigs (%.1f Mbp) written to %s",
        counts["records"],
        counts["contigs"],
        counts["bases"] / 1e6,
        args.output,
    )
    return 0
