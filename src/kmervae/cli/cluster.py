"""``kmervae cluster GRAPH -o OUT``: clusters of contigs (MCL, Leiden, HDBSCAN, RCL consensus)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from kmervae.cli._common import (
    Bounded,
    BoundedList,
    LogFile,
    add_common_options,
    add_neighbours_option,
    add_threads_option,
    non_negative_int,
    positive_float,
    positive_float_list,
    positive_int,
    positive_int_list,
    seed_type,
)
from kmervae.errors import KmervaeError
from kmervae.provenance import run_provenance

if TYPE_CHECKING:
    from kmervae.cluster.run import ClusterRequest

log = logging.getLogger(__name__)


def _methods(text: str) -> tuple[str, ...]:
    from kmervae.cluster.run import METHODS

    names = tuple(m.strip().lower() for m in text.split(","))
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown method {unknown[0]!r} (use {', '.join(METHODS)}, or mcl,leiden)"
        )
    return names


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cluster",
        help="cluster contigs: MCL or Leiden on the k-NN graph, HDBSCAN on a map",
        description="Cluster contigs. Graph methods (mcl, leiden) read a k-NN graph from "
        "'kmervae knn' and its store (lengths, GC): edges longer than --max-distance are "
        "dropped, each contig keeps its --max-in-degree closest incoming edges, edges are "
        "weighted 1/(d + delta) (or by shared neighbours) and symmetrised; MCL runs the real "
        "mcl program, over one loaded matrix for every inflation of -I. hdbscan clusters the "
        "points of a map ('kmervae map') or of embeddings. --consensus merges all the graph "
        "clusterings with RCL (mcl package) into one hierarchy cut at chosen resolutions. "
        "Output: a folder with clusters.tsv (contig_id, cluster), clusters.stats.tsv (size, "
        "total bp, GC min/max/spread, median length), summary.tsv and manifest.json.",
    )
    parser.add_argument(
        "input", type=Path, metavar="GRAPH", help="a k-NN graph; or a map or embeddings (hdbscan)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT", help="the clusters folder"
    )
    parser.add_argument(
        "--method",
        type=_methods,
        default=("mcl",),
        metavar="METHOD",
        help="mcl (default), leiden, hdbscan, or mcl,leiden (both, e.g. for --consensus)",
    )
    parser.add_argument(
        "--store", type=Path, metavar="STORE", help="the graph's store (default: the one it names)"
    )
    graph = parser.add_argument_group("the clustering graph (mcl, leiden)")
    add_neighbours_option(
        graph,
        "use each contig's first K neighbours of the graph (default: all k); sparser graphs "
        "are much cheaper for MCL",
        dest="neighbours",
    )
    graph.add_argument(
        "--max-distance",
        type=positive_float,
        metavar="D",
        help="drop edges longer than D (default: none)",
    )
    graph.add_argument(
        "--max-in-degree",
        type=non_negative_int,
        default=100,
        metavar="N",
        help="keep each contig's N closest incoming edges (default 100; 0: no cap)",
    )
    graph.add_argument(
        "--weight",
        choices=("inverse", "snn"),
        default="inverse",
        help="inverse: 1/(d + delta) (default); snn: Jaccard index of the two contigs' "
        "neighbour sets",
    )
    graph.add_argument(
        "--delta",
        type=positive_float,
        default=0.1,
        help="delta of the inverse weight (default 0.1)",
    )
    graph.add_argument(
        "--snn-k", type=positive_int, default=15, help="neighbours in each set for snn (default 15)"
    )
    graph.add_argument(
        "--symmetrise",
        choices=("union", "mutual"),
        default="union",
        help="union: keep a pair found in either direction (default); mutual: in both",
    )
    parser.add_argument(
        "--min-length",
        type=non_negative_int,
        default=0,
        metavar="BP",
        help="cluster only contigs at least this long (shorter ones stay unclustered)",
    )
    method = parser.add_argument_group("methods")
    method.add_argument(
        "-I",
        "--inflation",
        type=BoundedList(float, 1, 100, low_open=True),
        default=(3.0,),
        metavar="LIST",
        help="MCL inflation(s), e.g. 1.4,2,3,6: one clustering each (default 3.0)",
    )
    method.add_argument(
        "-r",
        "--resolution",
        type=positive_float_list,
        default=(1.0,),
        metavar="LIST",
        help="Leiden resolution(s), one clustering each (default 1.0)",
    )
    method.add_argument(
        "--mcl-resource",
        type=positive_int,
        metavar="N",
        help="mcl -resource: neighbours each contig keeps while mcl computes (default: mcl's "
        "own scheme); 100 runs several times faster on dense graphs",
    )
    method.add_argument(
        "--leiden-iterations",
        type=Bounded(int, -1),
        default=2,
        metavar="N",
        help="Leiden passes; -1 until stable (default 2)",
    )
    method.add_argument(
        "--leiden-implementation",
        choices=("igraph", "leidenalg"),
        default="igraph",
        help="igraph's own Leiden (C; default, about 10x faster) or leidenalg's",
    )
    method.add_argument("--seed", type=seed_type, default=1, help="Leiden's seed (default 1)")
    method.add_argument(
        "--min-cluster-size",
        type=Bounded(int, 2),
        metavar="N",
        help="HDBSCAN (default: 1000 x N / 4.8 M, at least 10)",
    )
    method.add_argument(
        "--min-samples",
        type=positive_int,
        metavar="N",
        help="HDBSCAN (default: a tenth of the minimum cluster size, at least 5)",
    )
    method.add_argument(
        "--consensus",
        action="store_true",
        help="merge every graph clustering with RCL (needs two or more)",
    )
    method.add_argument(
        "--consensus-resolutions",
        type=positive_int_list,
        metavar="LIST",
        help="RCL resolutions, coarser when larger (default 100,200,400,800,1600); the "
        "first becomes clusters.tsv",
    )
    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--format",
        choices=("kmervae", "vamb"),
        default="kmervae",
        dest="clusters_format",
        help="clusters.tsv as contig_id<TAB>cluster (default) or VAMB's clustername<TAB>contigname",
    )
    out.add_argument(
        "--write-bins",
        type=Path,
        metavar="DIR",
        help="write one FASTA per cluster of the first clustering (needs --fasta)",
    )
    out.add_argument(
        "--fasta", type=Path, nargs="+", default=[], metavar="FASTA", help="the contigs' FASTA"
    )
    out.add_argument(
        "--min-bin-size",
        type=non_negative_int,
        default=200_000,
        metavar="BP",
        help="write bins of at least this many bp (default 200000)",
    )
    add_threads_option(parser)
    add_common_options(parser)
    parser.set_defaults(run=run)


def request_from_args(args: argparse.Namespace) -> ClusterRequest:
    """The :class:`~kmervae.cluster.run.ClusterRequest` of the options (checked)."""
    from kmervae.cluster.graph import GraphOptions
    from kmervae.cluster.run import CONSENSUS_RESOLUTIONS, ClusterRequest

    if args.consensus_resolutions and not args.consensus:
        raise KmervaeError("--consensus-resolutions goes with --consensus")
    graph = GraphOptions(
        neighbours=args.neighbours,
        max_distance=args.max_distance,
        max_in_degree=args.max_in_degree or None,
        weight=args.weight,
        delta=args.delta,
        snn_k=args.snn_k,
        symmetrise=args.symmetrise,
        min_length=args.min_length,
    )
    consensus: tuple[int, ...] = ()
    if args.consensus:
        consensus = tuple(args.consensus_resolutions or CONSENSUS_RESOLUTIONS)
    return ClusterRequest(
        methods=args.method,
        graph=graph,
        inflations=tuple(args.inflation),
        resolutions=tuple(args.resolution),
        leiden_iterations=args.leiden_iterations,
        leiden_implementation=args.leiden_implementation,
        mcl_resource=args.mcl_resource,
        min_cluster_size=args.min_cluster_size,
        min_samples=args.min_samples,
        consensus=consensus,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from kmervae.cluster.output import cluster_to_folder
    from kmervae.cores import available_threads

    request = request_from_args(args)
    logs: list[LogFile] = []
    try:
        folder, entries = cluster_to_folder(
            args.input,
            args.output,
            request,
            store=args.store,
            fmt=args.clusters_format,
            threads=args.threads or available_threads(),
            bins_dir=args.write_bins,
            fasta=args.fasta,
            min_bin_size=args.min_bin_size,
            provenance=run_provenance(args.argv, seed=args.seed),
            overwrite=args.force,
            on_folder=lambda tmp: logs.append(LogFile(tmp / "kmervae.log", args, args.seed)),
        )
    finally:
        for logfile in logs:
            logfile.close()
    for entry in entries:
        spread = entry["median_gc_spread"]
        log.info(
            "%s: %d clusters (%d singletons) of %d contigs; median GC spread %s pp",
            entry["name"],
            entry["clusters"],
            entry["singletons"],
            entry["clustered_contigs"],
            "NA" if spread is None else f"{spread:.2f}",
        )
    log.info("clusters written to %s", folder)
    return 0
