"""Clustering and map speed at scale: ``kmervae knn`` -> ``cluster`` (MCL, Leiden) and ``map``.

Writes ``--n`` clustered vectors (the clustered space of ``index_speed.py``: ``--clusters``
Gaussian groups of unequal sizes and spreads, lengths log-uniform in 1-100 kbp), builds a
FAISS store and its k = 50 graph with the in-degree capped at 100, then times, each in a
fresh process (peak RSS of the largest process read by a small launcher with ``os.wait4``;
the summed RSS of kmervae and the mcl programs it runs, sampled with psutil):

- ``kmervae knn -k 50 --max-in-degree 100``;
- ``kmervae cluster --method mcl -I 3 --mcl-resource 100`` (the real mcl program, all
  cores), and with mcl's default pruning scheme last (``--mcl-default``: much slower on
  this dense graph);
- ``kmervae cluster --method leiden`` (igraph's Leiden) and, with ``--methods`` naming
  ``leidenalg``, ``--leiden-implementation leidenalg``;
- ``kmervae map --graph`` (openTSNE on the graph's neighbours), unless ``--skip-map``.

and prints the clusters found against the generating groups (ARI), so a fast but wrong run
shows. The graph's dimension matters only for ``knn``: ``--dim 32`` (default) keeps that
step short; the clustering sees the same graph shape at any dimension.

Every step runs ``--repeats`` times (default 3); its time and peak RSS are printed as the
median with the min–max range. The clusterings are seeded, so every run gives the same
clusters. At 1 M on 2 cores one run of knn, Leiden and the map takes about 14 min; MCL at
inflation 3 had not finished after 16 min (``--methods leiden`` leaves it out).

Targets for 1 M contigs on a 2-core machine: MCL <= 10 min and Leiden <= 5 min, each
<= 8 GB; a map of 1 M <= 30 min in <= 8 GB.

Usage: ``python benchmarks/cluster_speed.py [--n 1000000] [--repeats 3] [--work DIR]
[--skip-map]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import add_repeats_option, load_average, machine, runs_note, spread
from fresh_process import whole_process, whole_process_tree
from index_speed import Space

from kmervae.io.embeddings import EmbeddingsWriter


def write_embeddings(path: Path, n: int, space: Space, seed: int) -> np.ndarray:
    """The embeddings folder (lengths, GC); returns the generating group of every row."""
    rng = np.random.default_rng(seed)
    dim = space.centres.shape[1]
    groups = []
    gc_of = rng.uniform(0.25, 0.7, size=len(space.p)).astype(np.float32)
    with EmbeddingsWriter(path, dim, columns=("lengths", "gc")) as writer:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            c = rng.choice(len(space.p), size=m, p=space.p)
            noise = rng.normal(size=(m, dim)).astype(np.float32)
            x = space.centres[c] + noise * space.spread[c, None]
            lengths = np.exp(rng.uniform(np.log(1000), np.log(100_000), size=m)).astype(np.int64)
            gc = gc_of[c] + rng.normal(0, 0.005, m).astype(np.float32)
            writer.append(x, lengths=lengths, gc=gc)
            writer.append_ids([f"contig_{i}" for i in range(start, start + m)])
            groups.append(c)
        writer.close({"model": {"fingerprint": "benchmark-space", "path": None}})
    return np.concatenate(groups)


def timed(label: str, argv: list[str], repeats: int, output: Path) -> None:
    """Run ``python -m kmervae ARGV -q`` ``repeats`` times, ``output`` removed before each
    run; print the median wall time and peak RSS with their ranges."""
    runs = []
    for _ in range(repeats):
        shutil.rmtree(output, ignore_errors=True)
        runs.append(whole_process_tree([*argv, "-q"]))
    seconds = spread(s for s, _, _ in runs).format("{:.1f}", " s")
    largest = spread(r / 1024 for _, r, _ in runs).format("{:.2f}", " GiB")
    tree = spread(t / 1024 for _, _, t in runs).format("{:.2f}", " GiB")
    print(
        f"{label}\t{seconds}\tpeak RSS: largest process {largest}, kmervae and the programs "
        f"it runs together {tree}",
        flush=True,
    )


def agreement(folder: Path, truth: np.ndarray) -> str:
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    frame = pd.read_csv(folder / "clusters.tsv", sep="\t")
    rows = frame["contig_id"].str.removeprefix("contig_").astype(np.int64).to_numpy()
    labels = np.full(len(truth), -1, np.int64)
    labels[rows] = frame["cluster"].to_numpy()
    summary = pd.read_csv(folder / "summary.tsv", sep="\t").iloc[0]
    return (
        f"{int(summary['clusters'])} clusters ({int(summary['singletons'])} singletons), "
        f"ARI against the {len(np.unique(truth))} generating groups "
        f"{adjusted_rand_score(truth, labels):.3f}, median GC spread "
        f"{summary['median_gc_spread']} pp"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--inflation", default="3")
    parser.add_argument("--mcl-resource", default="100")
    parser.add_argument("--mcl-default", action="store_true", help="also mcl's own scheme")
    parser.add_argument("--skip-map", action="store_true")
    parser.add_argument(
        "--methods",
        default="mcl,leiden",
        help="which of mcl, leiden, leidenalg (Leiden through the leidenalg package) to time",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep the embeddings, store and graph in --work"
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    add_repeats_option(parser, what="step")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-cluster-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# {machine()}; n={args.n} dim={args.dim}; {load_average()}; {runs_note(args.repeats)}",
        flush=True,
    )
    emb, store, graph = work / "emb", work / "store", work / "graph"
    marker = work / f"graph-{args.n}-{args.dim}-{args.clusters}-{args.seed}.done"
    if args.reuse and marker.exists():
        truth = np.load(work / "truth.npy")
        print("reusing the embeddings, store and graph in", work, flush=True)
    else:
        for path in (emb, store, graph, marker):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
        t0 = time.perf_counter()
        space = Space(args.dim, args.clusters, args.seed)
        truth = write_embeddings(emb, args.n, space, args.seed)
        np.save(work / "truth.npy", truth)
        print(f"wrote {args.n} embeddings in {time.perf_counter() - t0:.1f} s", flush=True)
        whole_process(["index", "build", str(emb), "-o", str(store), "--backend", "faiss", "-q"])
        timed(
            "knn -k 50 --max-in-degree 100",
            ["knn", str(store), "-k", "50", "--max-in-degree", "100", "-o", str(graph)],
            args.repeats,
            graph,
        )
        marker.touch()
    runs = [
        ("mcl", "mcl", ["-I", args.inflation, "--mcl-resource", args.mcl_resource]),
        ("leiden", "leiden", []),
        ("leidenalg", "leiden", ["--leiden-implementation", "leidenalg"]),
    ]
    chosen = args.methods.split(",")
    for name, method, extra in [r for r in runs if r[0] in chosen]:
        out = work / f"clusters-{name}"
        argv = ["cluster", str(graph), "-o", str(out), "--method", method, *extra]
        timed(f"cluster --method {method} {' '.join(extra)}".strip(), argv, args.repeats, out)
        print(f"  {agreement(out, truth)}", flush=True)
    if not args.skip_map:
        out = work / "map"
        argv = ["map", str(emb), "--graph", str(graph), "-o", str(out)]
        timed("map --graph (openTSNE)", argv, args.repeats, out)
    if args.mcl_default:
        out = work / "clusters-mcl-default"
        timed(
            f"cluster --method mcl -I {args.inflation} (mcl's default scheme)",
            ["cluster", str(graph), "-o", str(out), "-I", args.inflation],
            args.repeats,
            out,
        )
        print(f"  {agreement(out, truth)}", flush=True)
    print(f"# done; {load_average()}", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
