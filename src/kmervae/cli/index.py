"""``kmervae index build|add|info``: the vector store of a space's embeddings."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from kmervae.cli._common import LogFile, add_common_options, positive_int, progress_bar
from kmervae.errors import KmervaeError
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--columns",
        type=Path,
        metavar="TSV",
        help="extra per-contig columns: a TSV with a header, the id first (numbers are "
        "stored as float64, anything else as text)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "index",
        help="build, extend and describe a vector store of embeddings",
        description="A vector store (LanceDB by default) of embeddings with their id, length, "
        "GC, source and extra columns, for 'kmervae search' and 'kmervae knn'.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="build a store from embedding stores",
        description="Build a store from one or more embedding stores written by 'kmervae "
        "embed' (all of one model), or from a ChromaDB collection (--from-chroma).",
    )
    build.add_argument("embeddings", nargs="*", type=Path, metavar="EMB", help="embedding store")
    build.add_argument(
        "-o", "--output", type=Path, required=True, metavar="STORE", help="the store to write"
    )
    _add_store_options(build)
    build.add_argument(
        "--backend",
        choices=("lance", "faiss", "exact"),
        default="lance",
        help="lance (default: LanceDB, IVF index, B-trees on id/row/length), faiss (IVF-Flat "
        "in memory: fastest batched search) or exact (brute force)",
    )
    build.add_argument(
        "--from-chroma",
        type=Path,
        metavar="DIR",
        help="import a ChromaDB persistent folder (ids, embeddings, length metadata)",
    )
    build.add_argument("--collection", help="ChromaDB collection (default: the only one)")
    tuning = build.add_argument_group("vector index (--nlist, --nprobe: also faiss)")
    tuning.add_argument(
        "--vector-index",
        choices=("ivf-flat", "ivf-pq"),
        help="ivf-flat (default: exact distances, fast to build) or ivf-pq (compact codes, "
        "re-ranked exactly; slow to train on few cores)",
    )
    tuning.add_argument(
        "--nlist",
        type=positive_int,
        metavar="N",
        help="IVF lists, at most the rows (default: about sqrt(N) for LanceDB, 4 sqrt(N) "
        "for faiss)",
    )
    tuning.add_argument(
        "--sub-vectors",
        type=positive_int,
        metavar="N",
        help="PQ sub-vectors, a divisor of the dimensions (default: dim / 8)",
    )
    tuning.add_argument(
        "--nprobe", type=positive_int, metavar="N", help="IVF lists searched per query (default 32)"
    )
    tuning.add_argument(
        "--refine-factor",
        type=positive_int,
        metavar="N",
        help="candidates re-ranked exactly, x k (default 10)",
    )
    tuning.add_argument(
        "--batch-index",
        choices=("auto", "none"),
        help="lance: also keep a FAISS IVF-Flat copy of the vectors for batches of 32+ "
        "unfiltered queries, searched list by list (auto, the default; several times the "
        "queries/s for N x dim x 4 bytes more disk) or not (none)",
    )
    tuning.add_argument(
        "--ann-min-rows",
        type=positive_int,
        metavar="N",
        help="no vector index below this many rows: exact scan (default 10000)",
    )
    add_common_options(build)
    build.set_defaults(run=run_build)

    add = actions.add_parser(
        "add",
        help="append embedding stores to a store",
        description="Append contigs; refuses ids already in the store, other dimensions, "
        "and embeddings of another model. Committed only when every row is in.",
    )
    add.add_argument("store", type=Path, metavar="STORE")
    add.add_argument("embeddings", nargs="+", type=Path, metavar="EMB")
    _add_store_options(add)
    add_common_options(add)
    add.set_defaults(run=run_add)

    info = actions.add_parser("info", help="counts, schema and model of a store")
    info.add_argument("store", type=Path, metavar="STORE")
    info.add_argument("--json", action="store_true", help="print JSON")
    add_common_options(info)
    info.set_defaults(run=run_info)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = {
        "num_partitions": args.nlist,
        "num_sub_vectors": args.sub_vectors,
        "nprobes": args.nprobe,
        "refine_factor": args.refine_factor,
        "ann_min_rows": args.ann_min_rows,
    }
    chosen: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    if args.vector_index is not None:
        chosen["index_type"] = args.vector_index
    if args.batch_index is not None:
        chosen["batch_index"] = args.batch_index
    return chosen


def run_build(args: argparse.Namespace) -> int:
    from kmervae.index.ingest import build_store
    from kmervae.io.atomic import check_writable

    check_writable(args.output, args.force)
    if args.from_chroma is not None:
        if args.embeddings:
            raise KmervaeError("--from-chroma imports a ChromaDB folder: give no EMB")
        from kmervae.index.chroma import import_chroma

        logs: list[LogFile] = []
        try:
            import_chroma(
                args.from_chroma,
                args.output,
                collection=args.collection,
                backend=args.backend,
                columns_tsv=args.columns,
                params=_params(args),
                provenance=run_provenance(args.argv),
                overwrite=args.force,
                on_store=lambda s: logs.append(LogFile(s.data_dir / "kmervae.log", args)),
            )
        finally:
            for logfile in logs:
                logfile.close()
        return 0
    if not args.embeddings:
        raise KmervaeError("give at least one embedding store (EMB), or --from-chroma DIR")
    bar = progress_bar(args, None, unit="rows", desc="index")
    logs = []
    try:
        summary = build_store(
            args.embeddings,
            args.output,
            backend=args.backend,
            columns_tsv=args.columns,
            params=_params(args),
            provenance=run_provenance(args.argv),
            overwrite=args.force,
            progress=bar.update,
            on_store=lambda s: logs.append(LogFile(s.data_dir / "kmervae.log", args)),
        )
    finally:
        bar.close()
        for logfile in logs:
            logfile.close()
    log.info("%s: %d contigs", summary.path, summary.n_rows)
    return 0


def run_add(args: argparse.Namespace) -> int:
    from kmervae.index.ingest import add_to_store
    from kmervae.index.protocol import read_manifest

    read_manifest(args.store)  # a clear error before a log file is opened in a non-store
    logfile = LogFile(args.store / "kmervae.log", args)
    bar = progress_bar(args, None, unit="rows", desc="add")
    try:
        summary = add_to_store(
            args.store,
            args.embeddings,
            columns_tsv=args.columns,
            provenance=run_provenance(args.argv),
            progress=bar.update,
        )
    finally:
        bar.close()
        logfile.close()
    log.info("%s: added %d contigs, now %d", summary.path, summary.n_added, summary.n_rows)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from kmervae.index.protocol import open_index

    info = open_index(args.store).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    out = sys.stdout
    out.write(f"store\t{info['path']}\n")
    out.write(f"backend\t{info['backend']}\n")
    out.write(f"contigs\t{info['n_rows']}\n")
    out.write(f"dimensions\t{info['dim']}\n")
    out.write(f"metric\t{info['metric']}\n")
    model = info["model"]
    out.write(f"model\t{model.get('fingerprint') or 'unknown'}\t{model.get('path') or ''}\n")
    params = info["params"]
    if params.get("vector_index") == "flat":
        out.write("vector index\tflat (exact)\n")
    elif params.get("vector_index"):
        pq = (
            f", {params.get('num_sub_vectors')} sub-vectors, refine x{params.get('refine_factor')}"
            if params["vector_index"] == "ivf-pq"
            else ""
        )
        out.write(
            f"vector index\t{params['vector_index']} ({params.get('num_partitions')} lists, "
            f"nprobe {params.get('nprobes')}{pq})\n"
        )
    elif info["backend"] != "exact":
        out.write("vector index\tnone (exact scan; too few rows to index)\n")
    if info["backend"] == "lance":
        batch = params.get("batch_index")
        lists = f" ({params.get('batch_lists')} lists)" if batch == "ivf-flat" else ""
        out.write(f"batch index\t{batch or 'none'}{lists}\n")
    for name, kind in info["schema"].items():
        out.write(f"column\t{name}\t{kind}\n")
    for entry in info["history"]:
        inputs = ", ".join(str(i.get("path")) for i in entry.get("inputs") or [])
        out.write(f"history\t{entry.get('action')}\t{entry.get('n_rows')}\t{inputs}\n")
    return 0
