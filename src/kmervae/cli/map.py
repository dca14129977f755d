"""``kmervae map EMB -o MAP``: a 2-D map of the embedding space (t-SNE or UMAP), as files."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.cli._common import (
    DPI,
    Bounded,
    LogFile,
    add_colour_options,
    add_common_options,
    add_neighbours_option,
    add_threads_option,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    progress_bar,
    seed_type,
)
from kmervae.errors import InputError, KmervaeError
from kmervae.provenance import run_provenance
from kmervae.viz.maps import BUILTIN_COLOURS

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "map",
        help="2-D map of the embeddings (t-SNE or UMAP), coloured by GC, cluster or label",
        description="Lay the contigs of an embeddings folder out in 2-D with openTSNE (FFT "
        "gradients, PCA initialisation) or UMAP, optionally from the neighbours of a kmervae "
        "knn graph of the same contigs. Output: a folder with coordinates.npy (float32 N x 2), "
        "ids.txt, lengths.npy, gc.npy, map.tsv, map.png and manifest.json.",
    )
    parser.add_argument("embeddings", type=Path, metavar="EMB", help="a kmervae embed folder")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="MAP", help="the map folder"
    )
    parser.add_argument("--method", choices=("tsne", "umap"), default="tsne", help="(default tsne)")
    parser.add_argument(
        "--graph",
        type=Path,
        metavar="GRAPH",
        help="a kmervae knn graph of the same contigs: its neighbours replace the map's own "
        "neighbour search",
    )
    parser.add_argument(
        "--min-length",
        type=non_negative_int,
        default=0,
        metavar="BP",
        help="map only contigs this long",
    )
    parser.add_argument("--seed", type=seed_type, default=1, help="random seed (default 1)")
    add_threads_option(parser)
    tsne = parser.add_argument_group("t-SNE")
    tsne.add_argument(
        "--perplexity",
        type=positive_float,
        default=30.0,
        help="(default 30; with --graph at most k/3 of the graph)",
    )
    tsne.add_argument(
        "--n-iter", type=positive_int, default=500, metavar="N", help="iterations (default 500)"
    )
    tsne.add_argument(
        "--early-iter",
        type=non_negative_int,
        default=250,
        metavar="N",
        help="early-exaggeration iterations before them (default 250, exaggeration 12)",
    )
    tsne.add_argument(
        "--exaggeration",
        type=positive_float,
        metavar="X",
        help="exaggeration after the early phase (default none = 1; 2-4 tightens clusters "
        "of millions of points)",
    )
    umap = parser.add_argument_group("UMAP (pip install 'kmervae[umap]')")
    add_neighbours_option(
        umap,
        "UMAP's n_neighbors, at least 2 (default 15)",
        type=Bounded(int, 2),
        default=15,
        dest="n_neighbors",
    )
    umap.add_argument("--min-dist", type=non_negative_float, default=0.1, help="(default 0.1)")
    colour = parser.add_argument_group("colours of map.png")
    add_colour_options(colour, clusters_from="with --clusters")
    colour.add_argument(
        "--clusters", type=Path, metavar="TSV", help="a clustering: contig id, cluster"
    )
    colour.add_argument("--dpi", type=DPI, default=150, help="map.png resolution (default 150)")
    add_common_options(parser)
    parser.set_defaults(run=run)


def _colour_choice(args: argparse.Namespace) -> str:
    """What map.png is coloured by, checked against the files given."""
    from kmervae.evaluate.labels import read_labels

    color = args.color
    if color is None:
        if args.clusters is not None:
            color = "cluster"
        elif args.labels is not None:
            color = read_labels(args.labels).ranks[0]
        else:
            color = "gc"
    if color == "cluster" and args.clusters is None:
        raise KmervaeError("--color cluster needs --clusters CLUSTERS.tsv")
    if color not in BUILTIN_COLOURS and args.labels is None:
        raise KmervaeError(
            f"--color {color} needs --labels TSV with a column {color!r} "
            f"(or use {', '.join(BUILTIN_COLOURS)})"
        )
    if args.clusters is not None and color != "cluster":
        log.warning("--clusters is not used: the map is coloured by %s", color)
    return color


def _categories(
    args: argparse.Namespace, color: str, ids: Any, n: int
) -> tuple[np.ndarray, list[str], Path]:
    """Codes and names of each mapped contig's cluster or label (fails fast, before t-SNE)."""
    from kmervae.evaluate.labels import read_clustering, read_labels
    from kmervae.viz.maps import category_codes

    mapping: dict[str, str | None]
    if color == "cluster":
        source = Path(args.clusters)
        clustering = read_clustering(source)
        mapping = dict(clustering)
        what = "clustered"
    else:
        source = Path(args.labels)
        table = read_labels(source, [color])
        mapping = {ident: values[0] for ident, values in table.by_id.items()}
        what = f"labelled ({color})"
    codes, names, found = category_codes(ids, mapping, n)
    if found == 0:
        raise InputError(
            f"{source}: none of the {n} mapped contigs is {what} there "
            f"(first {what} id {next(iter(mapping), None)!r}); do the ids match?"
        )
    if found < n:
        log.warning("%d of %d mapped contigs have no %s in %s (grey)", n - found, n, color, source)
    return codes, names, source


def _continuous(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1, 99])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def run(args: argparse.Namespace) -> int:
    from kmervae.cores import available_threads
    from kmervae.index.graph import open_knn_graph
    from kmervae.io.atomic import check_writable, remove_path, replace_path, temporary_name
    from kmervae.io.embeddings import open_embeddings
    from kmervae.viz import maps

    started = time.perf_counter()
    check_writable(args.output, args.force)
    color = _colour_choice(args)
    if args.method == "umap":
        maps.import_umap()
    if not Path(args.embeddings).exists():
        raise InputError(f"{args.embeddings}: no such embeddings folder")
    emb = open_embeddings(args.embeddings)
    graph = None
    if args.graph is not None:
        graph = open_knn_graph(args.graph)
        maps.check_graph_ids(graph, emb)
    n_all = emb.n_rows
    lengths_all = emb.lengths() if "lengths" in emb.columns else None
    if lengths_all is None and args.min_length > 0:
        raise InputError(f"{emb.path}: has no contig lengths, so --min-length cannot be used")
    rows = maps.rows_at_least(lengths_all, args.min_length) if lengths_all is not None else None
    n = n_all if rows is None else len(rows)
    if n < maps.MIN_ROWS:
        raise KmervaeError(
            f"--min-length {args.min_length} leaves {n} of {n_all} contigs; a map needs at "
            f"least {maps.MIN_ROWS}"
            if rows is not None
            else f"{emb.path}: {n} contigs are too few for a map (at least {maps.MIN_ROWS})"
        )
    if args.method == "tsne" and graph is None:
        maps.check_perplexity(args.perplexity, n)
    if args.method == "umap" and args.n_neighbors > n - 1:
        raise KmervaeError(f"-k/--neighbours {args.n_neighbors} is too big for {n} contigs")

    def take(column: np.ndarray) -> np.ndarray:
        return np.asarray(column if rows is None else column[rows])

    lengths = take(lengths_all) if lengths_all is not None else np.full(n, -1, np.int64)
    gc = take(emb.column("gc")) if "gc" in emb.columns else np.full(n, np.nan, np.float32)
    codes = names = source = None
    if color not in ("gc", "length"):
        codes, names, source = _categories(args, color, maps.select_ids(emb.iter_ids(), rows), n)

    threads = args.threads or available_threads()
    params: dict[str, Any] = {"seed": args.seed, "threads": threads}
    if args.method == "tsne":
        used = args.perplexity
        if graph is not None:
            used = maps.effective_perplexity(args.perplexity, graph.k)
        params.update(
            perplexity=args.perplexity,
            perplexity_used=used,
            iterations=args.n_iter,
            early_exaggeration_iterations=args.early_iter,
            early_exaggeration=12,
            exaggeration=args.exaggeration,
            gradient="fft",
            initialization="pca",
        )
        columns = min(graph.k, max(math.ceil(3 * used), 1)) if graph is not None else None
    else:
        columns = min(graph.k, args.n_neighbors - 1) if graph is not None else None
        used_neighbors = args.n_neighbors if columns is None else columns + 1
        params.update(
            n_neighbors=args.n_neighbors, n_neighbors_used=used_neighbors, min_dist=args.min_dist
        )
    params["neighbours"] = (
        f"graph ({columns} of k = {graph.k})"
        if graph is not None
        else (
            "openTSNE (exact below 1000 contigs, else Annoy)"
            if args.method == "tsne"
            else "UMAP (nearest-neighbour descent)"
        )
    )

    from threadpoolctl import threadpool_limits

    output = Path(args.output)
    tmp = temporary_name(output)
    remove_path(tmp)
    tmp.mkdir()
    try:
        logfile = LogFile(tmp / "kmervae.log", args, args.seed)
        try:
            log.info(
                "mapping %d of %d contigs of %s with %s (%d threads)",
                n,
                n_all,
                emb.path,
                args.method,
                threads,
            )
            neighbors = distances = None
            if graph is not None:
                neighbors, distances = maps.graph_neighbours(
                    graph.indices, graph.distances, rows, columns
                )
            with threadpool_limits(limits=threads):
                if args.method == "tsne":
                    bar = progress_bar(args, args.n_iter + args.early_iter, "it", "t-SNE")
                    try:
                        coords = maps.tsne_map(
                            emb.mu,
                            rows=rows,
                            neighbors=neighbors,
                            distances=distances,
                            perplexity=args.perplexity,
                            seed=args.seed,
                            threads=threads,
                            n_iter=args.n_iter,
                            early_iter=args.early_iter,
                            exaggeration=args.exaggeration,
                            progress=bar.update,
                        )
                    finally:
                        bar.close()
                else:
                    coords = maps.umap_map(
                        emb.mu,
                        rows=rows,
                        neighbors=neighbors,
                        distances=distances,
                        n_neighbors=args.n_neighbors,
                        min_dist=args.min_dist,
                        seed=args.seed,
                        threads=threads,
                    )
            del neighbors, distances
            map_seconds = time.perf_counter() - started
            log.info("%s map of %d contigs in %.1f s", args.method, n, map_seconds)
            ids_sha = maps.write_map_arrays(
                tmp, coords, lengths, gc, maps.select_ids(emb.iter_ids(), rows)
            )
            colouring = _render(args, color, coords, lengths, gc, codes, names, tmp / "map")
            if source is not None:
                colouring["source"] = str(source.resolve())
            seconds = time.perf_counter() - started
            peak = maps.peak_rss_bytes()
            log.info(
                "map of %d contigs written in %.1f s; peak RSS %.2f GB", n, seconds, peak / 1e9
            )
            manifest = {
                "format": maps.FORMAT_NAME,
                "schema_version": maps.SCHEMA_VERSION,
                "n_rows": n,
                "method": args.method,
                "params": params,
                "rows": {"min_length": args.min_length, "embeddings_rows": n_all},
                "ids_sha256": ids_sha,
                "embeddings": {
                    "path": str(emb.path.resolve()),
                    "n_rows": n_all,
                    "ids_sha256": emb.manifest.get("ids_sha256"),
                    "model_fingerprint": emb.model_fingerprint,
                },
                "graph": None
                if graph is None
                else {"path": str(graph.path.resolve()), "k": graph.k},
                "color": colouring,
                "seconds": round(seconds, 3),
                "map_seconds": round(map_seconds, 3),
                "peak_rss_bytes": peak,
                "provenance": run_provenance(args.argv, seed=args.seed),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        finally:
            logfile.close()
        replace_path(tmp, output)
    except BaseException:
        remove_path(tmp)
        raise
    return 0


def _render(
    args: argparse.Namespace,
    color: str,
    coords: np.ndarray,
    lengths: np.ndarray,
    gc: np.ndarray,
    codes: np.ndarray | None,
    names: list[str] | None,
    base: Path,
) -> dict[str, Any]:
    """Draw map.png; returns what the manifest records of the colouring."""
    from kmervae.viz import maps, render

    extent = render.square_extent(coords)
    axes = maps.axis_names(args.method)
    title = f"{len(coords):,} contigs"
    if args.min_length:
        title += f" of at least {args.min_length:,} bp"
    record: dict[str, Any] = {"by": color}
    if codes is None or names is None:
        if color == "gc":
            values, label, cmap = gc * 100, "GC content (%)", "viridis"
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(lengths > 0, np.log10(lengths.astype(np.float64)), np.nan)
            label, cmap = "log10 length (bp)", "magma"
        lo, hi = _continuous(values)
        image = render.shade_values(coords, values, extent, span=(lo, hi), cmap=cmap)
        render.plot_map(
            base,
            image,
            extent,
            title=title,
            axis_labels=axes,
            colorbar=(cmap, lo, hi, label),
            dpi=args.dpi,
        )
        record.update(colormap=cmap, range=[lo, hi])
    else:
        shown, colors, legend = render.top_categories(codes, names, args.top)
        image = render.shade_categories(coords, shown, colors, extent)
        render.plot_map(
            base,
            image,
            extent,
            title=f"{title}, by {color}",
            axis_labels=axes,
            legend=legend,
            dpi=args.dpi,
        )
        record.update(categories=len(names), named=len(colors))
    return record
