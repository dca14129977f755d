"""Bins speed: ``kmervae cluster --write-bins`` against a plain read of the same FASTA.

Writes ``--n`` contigs of ``--record-bp`` random bases to one FASTA (60 bases a line),
assigns them to clusters of Pareto-distributed sizes (like a real clustering: a few large
clusters, many small ones), then times, in this process and on the same file:

1. reading every record with kmervae's FASTA reader and doing nothing with it;
2. :func:`kmervae.cluster.bins.write_bins`: the same read plus writing every cluster of at
   least ``--min-bin-size`` bp to its own file.

and prints both rates and their ratio, each the median of ``--repeats`` runs (in turn: read,
bins, read, bins, ...) with its min–max range; the peak RSS of the process is printed at the
end. Target: bins for 1 M contigs in one pass at disk speed.

Usage: ``python benchmarks/bins_speed.py [--n 1000000] [--record-bp 1000] [--repeats 3]
[--work DIR]``
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import add_repeats_option, load_average, machine, runs_note, spread

from kmervae.cluster.bins import write_bins
from kmervae.cluster.clusters import canonical_labels
from kmervae.io.fasta import read_fasta_records


def write_fasta(path: Path, n: int, record_bp: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", np.uint8)
    with open(path, "wb") as fh:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            seqs = bases[rng.integers(0, 4, size=(m, record_bp))]
            for i in range(m):
                seq = seqs[i].tobytes()
                lines = b"\n".join(seq[j : j + 60] for j in range(0, record_bp, 60))
                fh.write(b">contig_%d\n%s\n" % (start + i, lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--record-bp", type=int, default=1000)
    parser.add_argument("--min-bin-size", type=int, default=200_000)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    add_repeats_option(parser)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-bins-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# {machine()}; n={args.n} x {args.record_bp} bp; "
        f"{load_average()}; {runs_note(args.repeats)}",
        flush=True,
    )
    fasta = work / "contigs.fa"
    if not fasta.exists():
        t0 = time.perf_counter()
        write_fasta(fasta, args.n, args.record_bp, args.seed)
        print(f"wrote {fasta.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s")
    size_mb = fasta.stat().st_size / 1e6
    rng = np.random.default_rng(args.seed)
    sizes = np.maximum(1, (rng.pareto(1.2, size=args.n // 20) * 10).astype(np.int64))
    labels = canonical_labels(np.repeat(np.arange(len(sizes)), sizes)[: args.n])
    if len(labels) < args.n:
        labels = np.r_[labels, np.full(args.n - len(labels), -1)]
    rng.shuffle(labels)
    lengths = np.full(args.n, args.record_bp, np.int64)
    ids = [f"contig_{i}" for i in range(args.n)]

    out = work / "bins"
    read_s, bins_s = [], []
    for _ in range(args.repeats):  # in turn, so that both see the same machine
        t0 = time.perf_counter()
        records = sum(1 for _ in read_fasta_records(fasta))
        read_s.append(time.perf_counter() - t0)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        t0 = time.perf_counter()
        summary = write_bins(out, [fasta], ids, labels, lengths, args.min_bin_size)
        bins_s.append(time.perf_counter() - t0)
    print(
        f"read only\t{records} records\t{spread(read_s).format('{:.1f}', ' s')}\t"
        f"{spread(size_mb / s for s in read_s).format('{:.0f}', ' MB/s')}",
        flush=True,
    )
    written = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    ratio = spread(b / r for b, r in zip(bins_s, read_s, strict=True))
    print(
        f"write bins\t{summary['bins']} bins, {summary['contigs']} contigs, {written:.0f} MB"
        f"\t{spread(bins_s).format('{:.1f}', ' s')}\t"
        f"{spread(size_mb / s for s in bins_s).format('{:.0f}', ' MB/s')} read\t"
        f"{ratio.format('{:.2f}', 'x')} the read",
        flush=True,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS of this process\t{peak:.2f} GiB")
    print(f"# done; {load_average()}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
