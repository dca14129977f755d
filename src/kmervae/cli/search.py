"""``kmervae search STORE``: nearest contigs of ids, embeddings or new sequences."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kmervae.cli._common import add_common_options, add_neighbours_option, add_threads_option
from kmervae.errors import InputError, KmervaeError
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def add_dask_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="fan the work out over Dask workers: a scheduler address (tcp://host:8786), or "
        "'local' for a local cluster; the store must be on storage the workers see",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="nearest contigs of ids, embeddings or new sequences",
        description="Search a store (kmervae index build) by contig ids (each excluding "
        "itself), by embeddings (.npy N x dim, or an embedding store), or by new sequences "
        "(--fasta with --model: profiled and embedded on the fly). Output: a TSV of query, "
        "rank, neighbour, distance (Euclidean), length.",
    )
    parser.add_argument("store", type=Path, metavar="STORE")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--ids", nargs="+", metavar="ID", help="contig ids in the store")
    query.add_argument("--ids-file", type=Path, metavar="FILE", help="ids, one per line")
    query.add_argument(
        "--embeddings",
        type=Path,
        metavar="X",
        help="an embedding store of the store's model, or a .npy (N x dim; it records no "
        "model, so it is taken to be in the store's space)",
    )
    query.add_argument("--fasta", type=Path, metavar="FASTA", help="new sequences (with --model)")
    parser.add_argument("--model", type=Path, metavar="MODEL", help="the store's model (--fasta)")
    add_neighbours_option(
        parser, "neighbours per query, at most the store's contigs (default 10)", default=10
    )
    parser.add_argument(
        "--where", metavar="EXPR", help='metadata filter, e.g. "length >= 5000 and gc < 0.5"'
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="TSV", help="write here (default: stdout)"
    )
    parser.add_argument(
        "--columns",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        default=[],
        metavar="NAME,...",
        help="store columns to add to each hit, e.g. sample,environment (kmervae index info "
        "lists them)",
    )
    add_threads_option(parser, "threads for --fasta")
    add_dask_option(parser)
    add_common_options(parser)
    parser.set_defaults(run=run)


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise InputError(f"{path}: no ids")
    return ids


def _check_inputs(args: argparse.Namespace) -> None:
    """Options and input files, before anything is loaded."""
    if (args.fasta is None) != (args.model is None):
        raise KmervaeError("--fasta and --model go together")
    for path, what in (
        (args.fasta, "FASTA file"),
        (args.model, "model"),
        (args.embeddings, "embeddings file or store"),
    ):
        if path is not None and not path.exists():
            raise InputError(f"{path}: no such {what}")
    if args.fasta is not None and args.fasta.is_dir():
        raise InputError(f"{args.fasta}: a folder, not a FASTA file")


def run(args: argparse.Namespace) -> int:
    from kmervae.distributed.fanout import dask_client, search_blocks
    from kmervae.index.protocol import open_index, storage_errors
    from kmervae.index.query import (
        check_hit_columns,
        embed_fasta,
        load_query_embeddings,
        search_by_ids,
        search_record,
        write_search_tsv,
    )
    from kmervae.io.atomic import check_writable
    from kmervae.provenance import atomic_with_sidecar

    if args.output is not None:
        check_writable(args.output, args.force, stream_ok=True)
    _check_inputs(args)
    store = open_index(args.store)
    store.check_k(args.k)
    store.parse_where(args.where)  # an unknown column fails before any work
    check_hit_columns(store, args.columns)
    names: list[str] = []
    queries = None
    if args.ids is not None or args.ids_file is not None:
        names = args.ids if args.ids is not None else _read_ids(args.ids_file)
    elif args.fasta is not None:
        names, queries = embed_fasta(args.fasta, args.model, store, args.threads or None)
    else:
        names, queries = load_query_embeddings(args.embeddings, store)
    client = dask_client(args.dask)
    try:
        if queries is None:
            result = search_by_ids(store, names, args.k, where=args.where, client=client)
        else:
            result = search_blocks(store, queries, args.k, where=args.where, client=client)
    finally:
        if client is not None:
            client.close()
    record = search_record(store, run_provenance(args.argv), args.columns)
    if args.output is None:
        lines = write_search_tsv(sys.stdout, store, names, result, args.columns)
    else:
        with (
            storage_errors(args.output),
            atomic_with_sidecar(args.output, record, overwrite=args.force) as tmp,
            open(tmp, "w") as fh,
        ):
            lines = write_search_tsv(fh, store, names, result, args.columns)
            record["n_rows"] = lines
    short = int((result.rows < 0).any(axis=1).sum())
    if short:
        reason = "passing the filter" if args.where else "found"
        log.warning("%d queries have fewer than %d neighbours %s", short, args.k, reason)
    log.info("%d queries, %d neighbours", len(names), lines)
    return 0
