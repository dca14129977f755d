"""Vector store and k-NN graph speed: ``kmervae index build``, ``search`` and ``knn``.

Writes an embedding store of ``--n`` clustered vectors of ``--dim`` dimensions (``--clusters``
Gaussian clusters of unequal sizes and spreads, like contigs of many genomes; lengths
log-uniform in 1-100 kbp), then prints, each figure as the median of ``--repeats`` runs with
its min–max range:

- store build time and peak RSS (``python -m kmervae index build`` in a fresh process per
  run, spawned by a small launcher, ``os.wait4``);
- recall@10 of the store's search against exact brute force, for ``--queries`` queries
  (fresh points of the same clusters), batched queries/s (and, for a FAISS index, FAISS's
  own search of the same index in the same run), and single-query latency. The first
  batch, which loads the index and computes the norms of the lists it reads, is timed
  apart; the batched runs after it are what a store that has answered a batch does;
- for an IVF index: its lists, the lists probed and the mean number of vectors a query
  scans (clustered data of unequal cluster sizes scans far more than N / lists x probes);
- filtered search (``length >= 5000``): time per query and recall against exact
  brute force over the rows that pass;
- ``kmervae knn -k 50`` time, peak RSS and its estimated recall (a fresh process per run;
  ``--knn-repeats``, default ``--repeats``).

The CPU, its cores (all of them, and those this process may use: affinity mask, cgroup
quota) and the load average are printed first, the load average again last, and each step
shows the cores it kept busy (CPU seconds over wall seconds): on a quiet 2-core machine
the build, the batched searches and knn keep about 2 busy. Other jobs on the machine slow
every figure; the range and the busy cores show it.

Targets for 1 M x 384 on a 2-core machine: build <= 3 min, recall@10 >= 0.95, >= 2000
batched queries/s, knn -k 50 <= 20 min with peak RSS <= 6 GB.

Usage: ``python benchmarks/index_speed.py [--n 1000000] [--dim 384] [--backend faiss]
[--repeats 3] [--knn-repeats 1] [--skip-knn] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import (
    add_repeats_option,
    cores_busy,
    load_average,
    machine,
    positive_int,
    rates,
    repeat_with_cpu,
    runs_note,
    spread,
)
from fresh_process import whole_process_usage

from kmervae.index import open_index
from kmervae.index.exact import brute_force_topk
from kmervae.io.embeddings import EmbeddingsWriter, open_embeddings


class Space:
    """Clusters of unequal size and spread in ``dim`` dimensions (seeded)."""

    def __init__(self, dim: int, clusters: int, seed: int):
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(0, 1, size=(clusters, dim)).astype(np.float32)
        self.spread = rng.uniform(0.05, 0.25, size=clusters).astype(np.float32)
        weights = rng.pareto(1.5, size=clusters) + 0.1
        self.p = weights / weights.sum()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """float32 (n, dim)."""
        c = rng.choice(len(self.p), size=n, p=self.p)
        noise = rng.normal(size=(n, self.centres.shape[1])).astype(np.float32)
        return self.centres[c] + noise * self.spread[c, None]


def write_embeddings(path: Path, n: int, space: Space, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dim = space.centres.shape[1]
    with EmbeddingsWriter(path, dim, columns=("lengths",)) as writer:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            lengths = np.exp(rng.uniform(np.log(1000), np.log(100_000), size=m)).astype(np.int64)
            writer.append(space.sample(m, rng), lengths=lengths)
            writer.append_ids([f"contig_{i}" for i in range(start, start + m)])
        writer.close({"model": {"fingerprint": "benchmark-space", "path": None}})


def run_process(argv: list[str]) -> tuple[float, float, float]:
    """Run ``python -m kmervae ARGV`` as a fresh process; (wall seconds, peak RSS in GiB,
    CPU seconds)."""
    seconds, rss_mib, cpu = whole_process_usage(argv)
    return seconds, rss_mib / 1024, cpu


def busy(walls: list[float], cpus: list[float]) -> str:
    return f"cores busy {cores_busy(walls, cpus).format('{:.1f}')}"


def exact_topk(emb_mu: np.ndarray, queries: np.ndarray, k: int, keep: np.ndarray | None):
    n = emb_mu.shape[0]

    def blocks():
        for s in range(0, n, 65536):
            rows = np.arange(s, min(s + 65536, n))
            if keep is not None:
                rows = rows[keep[rows]]
            yield rows, np.asarray(emb_mu[rows])

    return brute_force_topk(queries, blocks(), k)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def ivf_scan(index, queries: np.ndarray, nprobe: int) -> str:
    """Lists, probes and the mean number of vectors a query scans, for an IVF index."""
    sizes = np.array([index.invlists.list_size(i) for i in range(index.nlist)])
    probes = index.quantizer.search(np.ascontiguousarray(queries, np.float32), nprobe)[1]
    scanned = sizes[np.where(probes >= 0, probes, 0)] * (probes >= 0)
    return (
        f"IVF {index.nlist} lists (largest {sizes.max()}, mean {sizes.mean():.0f}), "
        f"{nprobe} probed: a query scans {scanned.sum(axis=1).mean():,.0f} vectors on average"
    )


def single_queries(store, queries: np.ndarray, where: str | None = None) -> np.ndarray:
    """Seconds of each query searched on its own."""
    times = []
    for q in queries:
        t0 = time.perf_counter()
        store.search(q[None, :], 10, where=where)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=200, help="queries timed one by one")
    parser.add_argument("--knn-k", type=int, default=50)
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument("--backend", default="lance", help="store backend: lance, faiss, exact")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    add_repeats_option(parser)
    parser.add_argument(
        "--knn-repeats",
        type=positive_int,
        help="runs of knn (default: --repeats; one run over 1 M x 384 takes about 20 min "
        "on 2 cores)",
    )
    args = parser.parse_args()
    runs = args.repeats
    knn_runs = args.knn_repeats or runs

    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-index-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# {machine()}; n={args.n} dim={args.dim} "
        f"clusters={args.clusters} backend={args.backend}; {load_average()}; "
        f"{runs_note(runs)}",
        flush=True,
    )
    space = Space(args.dim, args.clusters, args.seed)
    emb_path = work / "emb"
    store_path, graph_path = work / f"store-{args.backend}", work / f"graph-{args.backend}"
    for p in (store_path, graph_path):
        shutil.rmtree(p, ignore_errors=True)
    marker = work / f"emb-{args.n}-{args.dim}-{args.clusters}-{args.seed}.done"
    if not marker.exists():  # the same embeddings serve every backend
        shutil.rmtree(emb_path, ignore_errors=True)
        t0 = time.perf_counter()
        write_embeddings(emb_path, args.n, space, args.seed)
        marker.touch()
        print(f"wrote {args.n} embeddings in {time.perf_counter() - t0:.1f} s", flush=True)

    argv = ["index", "build", str(emb_path), "-o", str(store_path), "--backend", args.backend]
    builds = []
    for _ in range(runs):
        shutil.rmtree(store_path, ignore_errors=True)
        builds.append(run_process([*argv, "-q"]))
    print(
        f"index build ({args.backend})\t{spread(s for s, _, _ in builds).format('{:.1f}', ' s')}"
        f"\tpeak RSS {spread(r for _, r, _ in builds).format('{:.2f}', ' GiB')}\t"
        f"{busy([s for s, _, _ in builds], [c for _, _, c in builds])}",
        flush=True,
    )

    store = open_index(store_path)
    emb = open_embeddings(emb_path)
    rng = np.random.default_rng(args.seed + 1)
    queries = space.sample(args.queries, rng)
    truth = exact_topk(emb.mu, queries, 10, None)
    t0 = time.perf_counter()
    got = store.search(queries, 10)  # loads the index and the norms of the lists it reads
    print(
        f"first batch of {args.queries} (loads the index)\t{time.perf_counter() - t0:.2f} s",
        flush=True,
    )
    batched, cpu = repeat_with_cpu(lambda: store.search(queries, 10), runs)
    print(
        f"search k=10\trecall@10 {recall(got.rows, truth.rows):.3f}\t"
        f"batched {spread(rates(args.queries, batched)).format('{:.0f}', ' queries/s')}\t"
        f"{busy(batched, cpu)}",
        flush=True,
    )
    ivf = getattr(store, "_ivf", None)  # the lance batch index or the faiss store's index
    if ivf is not None and ivf.exists():
        import faiss

        index = ivf.load(len(store))
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = int(store.manifest["params"].get("nprobes") or 32)
            print(ivf_scan(index, queries, index.nprobe), flush=True)
            _, own = index.search(queries, 10)
            own_times, cpu = repeat_with_cpu(lambda: index.search(queries, 10), runs)
            ratio = spread(o / b for o, b in zip(own_times, batched, strict=True))
            print(
                f"same index, FAISS's own search\trecall@10 {recall(own, truth.rows):.3f}\t"
                f"batched {spread(rates(args.queries, own_times)).format('{:.0f}', ' queries/s')}"
                f"\t{busy(own_times, cpu)}\tlist by list: {ratio.format('{:.1f}', 'x')}",
                flush=True,
            )
    one_by_one = queries[: args.single]
    store.search(one_by_one[:1], 10)
    singles = [single_queries(store, one_by_one) for _ in range(runs)]
    print(
        f"single query\tmedian {spread(1000 * np.median(t) for t in singles).format(unit=' ms')}\t"
        f"p95 {spread(1000 * np.percentile(t, 95) for t in singles).format(unit=' ms')}\t"
        f"{spread(len(t) / t.sum() for t in singles).format('{:.0f}', ' queries/s')}",
        flush=True,
    )
    where = "length >= 5000"
    keep = np.asarray(emb.lengths()) >= 5000
    truth_f = exact_topk(emb.mu, queries, 10, keep)
    got_f = store.search(queries, 10, where=where)
    filtered, _ = repeat_with_cpu(lambda: store.search(queries, 10, where=where), runs)
    singles_f = [single_queries(store, one_by_one, where) for _ in range(runs)]
    print(
        f"filtered {where} ({keep.mean():.0%} pass)\trecall@10 "
        f"{recall(got_f.rows, truth_f.rows):.3f}\t"
        f"batched {spread(1000 * s / args.queries for s in filtered).format(unit=' ms/query')}\t"
        f"single (median) {spread(1000 * np.median(t) for t in singles_f).format('{:.1f}', ' ms')}",
        flush=True,
    )
    if not args.skip_knn:
        argv = ["knn", str(store_path), "-k", str(args.knn_k), "-o", str(graph_path), "-q"]
        knns = []
        for _ in range(knn_runs):
            shutil.rmtree(graph_path, ignore_errors=True)
            knns.append(run_process(argv))
        manifest = json.loads((graph_path / "manifest.json").read_text())
        method = manifest["method"]
        if isinstance(method, dict):  # the method and its parameters
            method = ", ".join(f"{k} {v}" for k, v in method.items() if k != "seed")
        print(
            f"knn -k {args.knn_k}\t{spread(s for s, _, _ in knns).format('{:.1f}', ' s')}\t"
            f"peak RSS {spread(r for _, r, _ in knns).format('{:.2f}', ' GiB')}\t"
            f"{busy([s for s, _, _ in knns], [c for _, _, c in knns])}\t"
            f"{method}\testimated recall {manifest['recall_estimate']}",
            flush=True,
        )
    print(f"# done; {load_average()}", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
