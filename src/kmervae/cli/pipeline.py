"""``kmervae pipeline FASTA... -o OUT``: profile, train, embed, index, knn, cluster, map,
evaluate, compare and report, each the command of that name; a rerun skips what is done."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kmervae.cli._common import (
    add_common_options,
    add_device_option,
    add_neighbours_option,
    add_threads_option,
    non_negative_int,
    positive_int,
    positive_int_list,
    seed_type,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pipeline",
        help="FASTA to profiles, model, embeddings, clusters, map, quality and report",
        description="Run every stage from FASTA files to clusters, a map and quality figures, "
        "each stage the kmervae command of that name, its output in a folder of OUT: "
        "profiles, train (skipped with --model), embeddings, store, graph, clusters, map, "
        "quality.json (evaluate; taxonomy.json with --labels), compare (with --samples) and "
        "report.html. OUT/pipeline.json records each stage's command line and the checksums "
        "of its inputs: a rerun skips the stages that are up to date and redoes the others "
        "(an interrupted training resumes). --config FILE.toml sets any option of any stage "
        "(a section per stage); the options below win over it.",
    )
    parser.add_argument("fastas", nargs="+", type=Path, metavar="FASTA", help="one per sample")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT", help="the pipeline's folder"
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="MODEL",
        help="embed with this model instead of training one: a model folder (VAE or PCA), a "
        "checkpoint .pt or an .onnx",
    )
    parser.add_argument(
        "--config", type=Path, metavar="TOML", help="options per stage: [train] epochs = 40 …"
    )
    stages = parser.add_argument_group("stage options (also in --config)")
    stages.add_argument(
        "--min-length", type=non_negative_int, metavar="BP", help="profile: skip shorter contigs"
    )
    stages.add_argument("--epochs", type=positive_int, metavar="N", help="train: epochs")
    stages.add_argument("--latent", type=positive_int, metavar="N", help="train: latent size")
    stages.add_argument(
        "--hidden", type=positive_int_list, metavar="W,W", help="train: hidden widths"
    )
    stages.add_argument("--batch-size", type=positive_int, metavar="N", help="train: batch size")
    add_device_option(stages, "train and embed: auto (default), cpu, cuda, cuda:N or mps")
    stages.add_argument(
        "--method",
        metavar="METHOD",
        help="cluster: leiden (the pipeline's default), mcl, hdbscan or mcl,leiden",
    )
    add_neighbours_option(stages, "knn: neighbours per contig (default 50)")
    stages.add_argument(
        "--map-method", choices=("tsne", "umap"), help="map: tsne (default) or umap"
    )
    stages.add_argument(
        "--seed", type=seed_type, default=1, help="seed of every stage that has one (default 1)"
    )
    add_threads_option(stages)
    evaluation = parser.add_argument_group("evaluation and comparison")
    evaluation.add_argument(
        "--labels",
        type=Path,
        metavar="TSV",
        help="labels of the contigs: adds taxonomy.json, and without --catalog colours the "
        "report's map (by genus where there is a genus column)",
    )
    evaluation.add_argument(
        "--catalog", type=Path, metavar="TSV", help="genome catalogue joined with --labels"
    )
    evaluation.add_argument(
        "--samples", type=Path, metavar="TSV", help="contig, sample and group: adds compare"
    )
    evaluation.add_argument("--a", metavar="GROUP", help="compare: the first group")
    evaluation.add_argument("--b", metavar="GROUP", help="compare: the second group")
    add_common_options(parser, force_help="redo every stage")
    parser.set_defaults(run=run, device=None)


def stage_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The options of the command line, by stage (None: not given)."""
    return {
        "profile": {"min_length": args.min_length},
        "train": {
            "epochs": args.epochs,
            "latent": args.latent,
            "hidden": list(args.hidden) if args.hidden else None,
            "batch_size": args.batch_size,
            "device": args.device,
        },
        "embed": {"device": args.device},
        "knn": {"neighbours": args.k},
        "cluster": {"method": args.method},
        "map": {"method": args.map_method},
    }


def run(args: argparse.Namespace) -> int:
    from kmervae.errors import KmervaeError
    from kmervae.pipeline.run import run_pipeline, summary_lines

    groups = None
    if args.samples is not None or args.a is not None or args.b is not None:
        if args.samples is None or args.a is None or args.b is None:
            raise KmervaeError("--samples, --a and --b go together")
        groups = (args.a, args.b)
    verbosity = args.verbose - args.quiet

    def echo(line: str) -> None:
        if verbosity >= 0:
            print(line, file=sys.stderr, flush=True)

    result = run_pipeline(
        args.fastas,
        args.output,
        model=args.model,
        config=args.config,
        options=stage_options(args),
        labels=args.labels,
        catalog=args.catalog,
        samples=args.samples,
        groups=groups,
        seed=args.seed,
        threads=args.threads,
        force=args.force,
        verbosity=verbosity,
        echo=echo,
        argv=args.argv,
    )
    if verbosity >= 0:
        print("\n".join(summary_lines(result)))
    return 0
