"""``kmervae report INPUT... -o report.html``: one self-contained HTML page of kmervae
outputs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import add_colour_options, add_common_options, positive_int, seed_type
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="one self-contained HTML report: training, quality, map, clusters, comparison",
        description="Gather kmervae outputs into one HTML file that opens in any browser with "
        "no network: training curves of a run, the tables of 'kmervae evaluate' JSON results "
        "(models beside baselines, the best value highlighted), an interactive map (pan, "
        "zoom, a tooltip per contig with its labels; coloured by GC, length, cluster or a "
        "label, as 'kmervae map' colours), "
        "the clusters, the comparison of sample groups, and the provenance of every input. "
        "Each section appears when an input provides it. The provenance of the report is "
        "written into it and beside it (OUT.html.json).",
    )
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUT",
        help="training run or model folders, evaluate JSON results (-o X.json, matrix "
        "OUT.json), map, cluster, compare and embed folders, pipeline folders, or any "
        "output with a manifest (listed with its provenance)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="HTML", help="the report file"
    )
    parser.add_argument(
        "--title", metavar="TEXT", help="the page's title (default: kmervae report)"
    )
    parser.add_argument(
        "--samples",
        type=Path,
        metavar="TSV",
        help="contig, sample and group of each contig (as for 'kmervae compare'), shown in the "
        "map's tooltips (default: each contig's source file, from an embed folder among the "
        "inputs)",
    )
    colour = parser.add_argument_group("colours of the map")
    add_colour_options(
        colour,
        clusters_from="with a cluster folder among the inputs",
        labels_note="; every column is shown in the map's tooltips",
    )
    parser.add_argument(
        "--max-points",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="map points drawn at most; a bigger map is drawn as a seeded random sample of N "
        "points plus a density image of all of them (default 100000)",
    )
    parser.add_argument(
        "--seed", type=seed_type, default=1, help="seed of the map sample (default 1)"
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kmervae.io.atomic import check_writable
    from kmervae.viz.report import build_report

    check_writable(args.output, args.force)
    build_report(
        args.inputs,
        args.output,
        title=args.title,
        samples=args.samples,
        labels=args.labels,
        color=args.color,
        top=args.top,
        max_points=args.max_points,
        seed=args.seed,
        provenance=run_provenance(args.argv, seed=args.seed),
        overwrite=args.force,
    )
    return 0
