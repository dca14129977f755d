"""``kmervae knn STORE -k 50 -o GRAPH``: all-vs-all neighbours, as a compact binary graph."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import (
    LogFile,
    add_common_options,
    add_neighbours_option,
    add_threads_option,
    non_negative_float,
    positive_int,
    progress_bar,
    seed_type,
)
from kmervae.cli.search import add_dask_option
from kmervae.errors import KmervaeError
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "knn",
        help="k nearest neighbours of every contig (the graph for clustering)",
        description="All-vs-all k nearest neighbours of a store's contigs (each excluding "
        "itself), with FAISS: exact brute force for small stores, IVF-Flat beyond; batched, "
        "multi-threaded, streamed to disk. Output: a folder with indices.npy (int32 N x k), "
        "distances.npy (float32 N x k), ids.txt and manifest.json.",
    )
    parser.add_argument("store", type=Path, metavar="STORE")
    add_neighbours_option(
        parser, "neighbours per contig, fewer than the store's contigs (default 50)", default=50
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="GRAPH", help="the graph folder"
    )
    parser.add_argument(
        "--method",
        choices=("auto", "exact", "ivf-flat", "ivf-gemm"),
        default="auto",
        help="auto (default): exact up to 50 000 contigs, else ivf-gemm (ivf-flat with --dask)",
    )
    parser.add_argument(
        "--nlist",
        type=positive_int,
        metavar="N",
        help="IVF lists, at most the store's contigs (default: about sqrt(N))",
    )
    parser.add_argument(
        "--nprobe",
        type=positive_int,
        default=16,
        metavar="N",
        help="IVF lists scanned per contig (default 16; more than --nlist scans them all)",
    )
    parser.add_argument(
        "--max-distance",
        type=non_negative_float,
        metavar="D",
        help="drop edges longer than D",
    )
    parser.add_argument(
        "--max-in-degree",
        type=positive_int,
        metavar="N",
        help="keep at most N in-edges per contig, the nearest (tames hubs)",
    )
    parser.add_argument(
        "--tsv", type=Path, metavar="FILE", help="also export the edges as a TSV (ids)"
    )
    parser.add_argument(
        "--block",
        type=positive_int,
        default=8192,
        metavar="N",
        help="contigs per batch (default 8192)",
    )
    add_threads_option(parser)
    parser.add_argument(
        "--seed",
        type=seed_type,
        default=0,
        help="seed of the IVF training sample (the same seed, the same graph)",
    )
    add_dask_option(parser)
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kmervae.distributed.fanout import dask_client
    from kmervae.index.graph import graph_tsv_record, open_knn_graph, write_graph_tsv
    from kmervae.index.knn import check_knn_request, knn_graph
    from kmervae.index.protocol import open_index, storage_errors
    from kmervae.io.atomic import check_writable
    from kmervae.provenance import atomic_with_sidecar

    check_writable(args.output, args.force)
    if args.tsv is not None:
        if args.tsv.resolve() == args.output.resolve():
            raise KmervaeError(f"--tsv {args.tsv} is the graph folder itself")
        check_writable(args.tsv, args.force, stream_ok=True)
    store = open_index(args.store)
    check_knn_request(
        store,
        args.k,
        args.method,
        args.nlist,
        max_distance=args.max_distance,
        distributed=args.dask is not None,
    )  # before a Dask cluster starts
    logs: list[LogFile] = []
    bar = progress_bar(args, len(store), unit="contigs", desc="knn")
    client = dask_client(args.dask)
    try:
        summary = knn_graph(
            store,
            args.output,
            args.k,
            method=args.method,
            nlist=args.nlist,
            nprobe=args.nprobe,
            max_distance=args.max_distance,
            max_in_degree=args.max_in_degree,
            threads=args.threads or None,
            client=client,
            block=args.block,
            seed=args.seed,
            provenance=run_provenance(args.argv, seed=args.seed),
            overwrite=args.force,
            progress=bar.update,
            on_folder=lambda tmp: logs.append(LogFile(tmp / "kmervae.log", args, args.seed)),
        )
    finally:
        bar.close()
        for logfile in logs:
            logfile.close()
        if client is not None:
            client.close()
    if args.tsv is not None:
        graph = open_knn_graph(summary.output)
        record = graph_tsv_record(graph, run_provenance(args.argv, seed=args.seed))
        with (
            storage_errors(args.tsv),
            atomic_with_sidecar(args.tsv, record, overwrite=args.force) as tmp,
            open(tmp, "w") as fh,
        ):
            record["n_rows"] = write_graph_tsv(graph, fh)
    return 0
