"""Vector store and k-NN graph speed: ``kmervae index build``, ``search`` and ``knn``.

Writes an embedding store of ``--n`` clustered vectors of ``--dim`` dimensions (``--clusters``
Gaussian clusters of unequal sizes and spreads, like contigs of many genomes; lengths
log-uniform in 1-100 kbp), then prints:

- store build time and peak RSS (``python -m kmervae index build`` in a fresh process,
  spawned by a small launcher, ``os.wait4``);
- recall@10 of the store's search against exact brute force, for ``--queries`` queries
  (fresh points of the same clusters), batched queries/s (and, for a FAISS index, FAISS's
  own search of the same index in the same run), and single-query latency;
- filtered search (``length >= 5000``): time per query and recall against exact
  brute force over the rows that pass;
- ``kmervae knn -k 50`` time, peak RSS and its estimated recall (in a fresh process).

Targets (issue 5, 1 M x 384 on a 2-core machine): build <= 3 min, recall@10 >= 0.95,
>= 2000 batched queries/s, knn -k 50 <= 20 min with peak RSS <= 6 GB.

Usage: ``python benchmarks/index_speed.py [--n 1000000] [--dim 384] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from fresh_process import whole_process

from kmervae.cores import cpu_name
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


def run_process(argv: list[str]) -> tuple[float, float]:
    """Run ``python -m kmervae ARGV`` as a fresh process; (wall seconds, peak RSS in GiB)."""
    seconds, rss_mib = whole_process(argv)
    return seconds, rss_mib / 1024


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
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-index-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {cpu_name()}, {os.cpu_count()} cores; n={args.n} dim={args.dim}", flush=True)
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
    seconds, rss = run_process([*argv, "-q"])
    print(f"index build ({args.backend})\t{seconds:.1f} s\tpeak RSS {rss:.2f} GiB", flush=True)

    store = open_index(store_path)
    emb = open_embeddings(emb_path)
    rng = np.random.default_rng(args.seed + 1)
    queries = space.sample(args.queries, rng)
    truth = exact_topk(emb.mu, queries, 10, None)
    t0 = time.perf_counter()
    store.search(queries[:64], 10)  # loads the index, warms caches
    print(f"first batch of 64 (loads the index)\t{time.perf_counter() - t0:.2f} s", flush=True)
    t0 = time.perf_counter()
    got = store.search(queries, 10)
    batched = time.perf_counter() - t0
    print(
        f"search k=10\trecall@10 {recall(got.rows, truth.rows):.3f}\t"
        f"{args.queries / batched:.0f} queries/s batched",
        flush=True,
    )
    ivf = getattr(store, "_ivf", None)  # the lance batch index or the faiss store's index
    if ivf is not None and ivf.exists():
        import faiss

        index = ivf.load(len(store))
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = int(store.manifest["params"].get("nprobes") or 32)
            t0 = time.perf_counter()
            _, own = index.search(queries, 10)
            own_rate = args.queries / (time.perf_counter() - t0)
            print(
                f"same index, FAISS's own search\trecall@10 {recall(own, truth.rows):.3f}\t"
                f"{own_rate:.0f} queries/s batched\t"
                f"list by list: {args.queries / batched / own_rate:.1f}x",
                flush=True,
            )
    times = []
    for q in queries[: args.single]:
        t0 = time.perf_counter()
        store.search(q[None, :], 10)
        times.append(time.perf_counter() - t0)
    print(
        f"single query\tmedian {1000 * np.median(times):.2f} ms\t"
        f"p95 {1000 * np.percentile(times, 95):.2f} ms\t{len(times) / sum(times):.0f} queries/s",
        flush=True,
    )
    keep = np.asarray(emb.lengths()) >= 5000
    truth_f = exact_topk(emb.mu, queries, 10, keep)
    t0 = time.perf_counter()
    got_f = store.search(queries, 10, where="length >= 5000")
    filtered = time.perf_counter() - t0
    times = []
    for q in queries[: args.single]:
        t0 = time.perf_counter()
        store.search(q[None, :], 10, where="length >= 5000")
        times.append(time.perf_counter() - t0)
    print(
        f"filtered length >= 5000 ({keep.mean():.0%} pass)\trecall@10 "
        f"{recall(got_f.rows, truth_f.rows):.3f}\t{1000 * filtered / args.queries:.2f} ms/query "
        f"batched\t{1000 * np.median(times):.1f} ms single (median)",
        flush=True,
    )
    if not args.skip_knn:
        argv = ["knn", str(store_path), "-k", str(args.knn_k), "-o", str(graph_path), "-q"]
        seconds, rss = run_process(argv)
        manifest = json.loads((graph_path / "manifest.json").read_text())
        print(
            f"knn -k {args.knn_k}\t{seconds:.1f} s\tpeak RSS {rss:.2f} GiB\t"
            f"{manifest['method']}\testimated recall {manifest['recall_estimate']}",
            flush=True,
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
