"""``kmervae compare MAP --samples SAMPLES.tsv --a GROUP --b GROUP -o OUTDIR``: two groups
of samples on one map."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import DPI, Bounded, LogFile, add_common_options, positive_int
from kmervae.errors import KmervaeError
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare",
        help="compare two groups of samples on a map (density difference, overlay, composition)",
        description="Where on a kmervae map do the contigs of two groups of samples lie? "
        "Writes a density-difference heat map (B minus A), an overlay (A cyan, B yellow, "
        "overlap green) and, with --clusters, each cluster's composition, as PNG and PDF.",
    )
    parser.add_argument("map", type=Path, metavar="MAP", help="a kmervae map folder")
    parser.add_argument(
        "--samples",
        type=Path,
        required=True,
        metavar="TSV",
        help="contig, sample and group of each contig (a header line; the first column "
        "contig, contig_id or id)",
    )
    parser.add_argument("--a", required=True, metavar="GROUP", help="the first group")
    parser.add_argument("--b", required=True, metavar="GROUP", help="the second group")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUTDIR", help="the figures' folder"
    )
    parser.add_argument(
        "--clusters",
        type=Path,
        metavar="TSV",
        help="a clustering (contig id, cluster): adds composition.tsv and its bar chart",
    )
    parser.add_argument(
        "--bins",
        type=Bounded(int, 2, 10_000),
        default=200,
        help="histogram bins per axis (default 200)",
    )
    parser.add_argument(
        "--format",
        default="png,pdf",
        dest="formats",
        metavar="LIST",
        help="png and/or pdf, comma-separated (default png,pdf)",
    )
    parser.add_argument("--dpi", type=DPI, default=300, help="PNG resolution (default 300)")
    parser.add_argument(
        "--top",
        type=positive_int,
        default=30,
        metavar="N",
        help="clusters in the bar chart (default 30)",
    )
    parser.add_argument(
        "--overlay-scale",
        choices=("eq_hist", "log", "linear"),
        default="eq_hist",
        help="how each group's counts become brightness in the overlay (default eq_hist)",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kmervae.evaluate.labels import read_clustering
    from kmervae.io.atomic import check_writable
    from kmervae.viz.compare import compare_groups, parse_formats, read_samples
    from kmervae.viz.maps import open_map

    if args.a == args.b:
        raise KmervaeError(f"--a and --b are both {args.a!r}: compare two different groups")
    formats = parse_formats(args.formats)
    check_writable(args.output, args.force)
    map_data = open_map(args.map)
    table = read_samples(args.samples)
    table.index(args.a)
    table.index(args.b)
    clusters = read_clustering(args.clusters) if args.clusters is not None else None
    logs: list[LogFile] = []
    try:
        compare_groups(
            map_data,
            table,
            args.a,
            args.b,
            args.output,
            clusters=clusters,
            clusters_path=args.clusters,
            bins=args.bins,
            formats=formats,
            dpi=args.dpi,
            top=args.top,
            how=args.overlay_scale,
            provenance=run_provenance(args.argv),
            overwrite=args.force,
            on_folder=lambda tmp: logs.append(LogFile(tmp / "kmervae.log", args)),
        )
    finally:
        for logfile in logs:
            logfile.close()
    return 0
