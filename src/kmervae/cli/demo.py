"""``kmervae demo``: the whole pipeline on a mock metagenome of real genomes shipped with
kmervae."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kmervae.cli._common import (
    add_common_options,
    add_device_option,
    add_threads_option,
    positive_int,
    seed_type,
)

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the whole pipeline on a mock metagenome of shipped genomes",
        description="Cut seven real genomes shipped with kmervae (bacteria of four phyla, an "
        "archaeon and a phage; BSD-3-Clause and MIT, see the attribution in OUT/inputs) into "
        "a seeded mock metagenome of four samples, two of group A and two of group B with "
        "different abundances, then profile, train, embed, index, cluster, map, evaluate "
        "and compare them, and write OUT/report.html. Full size: about 6 800 contigs, some "
        "minutes on a laptop CPU; small: about 400 contigs, under a minute.",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT", help="the demo's folder"
    )
    parser.add_argument(
        "--size",
        choices=("full", "small"),
        default="full",
        help="full (default: about 6 800 contigs) or small (about 400, a tiny training)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help="training epochs (default: 50 at full size, 8 small)",
    )
    add_device_option(parser, "training device: auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=seed_type, default=1, help="random seed (default 1)")
    add_threads_option(parser)
    add_common_options(parser, force_help="replace the demo folder's outputs that exist")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kmervae.demo.run import run_demo
    from kmervae.pipeline.run import summary_lines

    verbosity = args.verbose - args.quiet

    def echo(line: str) -> None:
        if verbosity >= 0:
            print(line, file=sys.stderr, flush=True)

    result = run_demo(
        args.output,
        size=args.size,
        epochs=args.epochs,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        overwrite=args.force,
        verbosity=verbosity,
        echo=echo,
        argv=args.argv,
    )
    if verbosity >= 0:
        print("\n".join(summary_lines(result.pipeline)))
        print(f"demo: finished in {result.seconds:.0f} s")
    print(f"open {result.report}")
    return 0
