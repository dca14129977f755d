#!/usr/bin/env python
"""Whole-process speed and memory of ``kmervae profile``.

Builds its own inputs (contigs chopped from a folder of genome FASTA files, by default
../shared/data/genomes beside the checkout, else synthetic sequences), then runs the real
command line in a fresh process per measurement and prints Mbp/s, contigs/s and peak RSS
for plain and gzip input at 1 and N threads, plus the isal decompression speed of the same
gzip file measured in the same run, and the fixed cost per contig. Every figure is the
median of ``--repeats`` runs with its min–max range; derived figures (the rate after
start-up, the cost per contig) come from the medians.

    python benchmarks/profile_speed.py                 # ~1 Gbp of 2-20 kbp contigs
    python benchmarks/profile_speed.py --size-mbp 200 --genomes /path/to/genomes
    python benchmarks/profile_speed.py --size-mbp 20 --short-mbp 5   # a quick check
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import add_repeats_option, load_average, machine, runs_note, spread
from isal import igzip

DEFAULT_GENOMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "genomes"


def _genome_sequences(folder: Path) -> list[bytes]:
    from kmervae.io.fasta import read_fasta_records

    seqs = []
    for path in sorted(folder.glob("*.fa*")):
        seqs += [seq for _, _, seq in read_fasta_records(path) if len(seq) >= 1000]
    return seqs


def _synthetic_sequences(rng: np.random.Generator) -> list[bytes]:
    seqs = []
    for gc in np.linspace(0.25, 0.7, 12):
        p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
        seqs.append(rng.choice(np.frombuffer(b"ACGT", np.uint8), 4_000_000, p=p).tobytes())
    return seqs


def build_fasta(
    path: Path, seqs: list[bytes], size_bp: int, lo: int, hi: int, seed: int
) -> tuple[int, int]:
    """Write contigs of uniform random length lo..hi cut from ``seqs`` until ``size_bp``."""
    rng = np.random.default_rng(seed)
    n = bases = 0
    with open(path, "wb") as out:
        while bases < size_bp:
            for seq in seqs:
                start = int(rng.integers(0, 1000))
                while start + lo <= len(seq) and bases < size_bp:
                    size = int(rng.integers(lo, hi + 1))
                    piece = seq[start : start + size]
                    out.write(b">c%d\n" % n)
                    out.write(b"\n".join(piece[i : i + 80] for i in range(0, len(piece), 80)))
                    out.write(b"\n")
                    n += 1
                    bases += len(piece)
                    start += size
            if bases == 0:
                raise SystemExit("no usable sequence (all records shorter than the contigs)")
    return n, bases


def run_profile(fasta: Path, out: Path, threads: int, extra: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of one ``kmervae profile`` process."""
    cmd = [
        sys.executable,
        "-m",
        "kmervae",
        "profile",
        str(fasta),
        "-o",
        str(out),
        "-q",
        "--force",
        "-t",
        str(threads),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # let write-back of this output finish before the next measurement
    return seconds, usage.ru_maxrss // 1024


def isal_speed(path: Path, repeats: int) -> list[float]:
    """MB/s of decompressed output, isal in one thread, for each of ``repeats`` runs."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        with igzip.open(path, "rb") as fh:
            while fh.read(4 << 20):
                pass
        rates.append(path_plain_size(path) / 1e6 / (time.perf_counter() - start))
    return rates


def kernel_scaling(
    path: Path, threads: int, repeats: int, size: int = 400 << 20
) -> dict[int, list[float]]:
    """In-memory profiling rate (MB/s of FASTA) with 1..threads workers, ``repeats`` runs
    each (in turn): no I/O, no writes."""
    from concurrent.futures import ThreadPoolExecutor

    from kmervae.kmers.profile import BufferPool, profile_segment

    data = path.read_bytes()[:size]
    cuts = [0]
    while cuts[-1] < len(data):
        nxt = data.find(b"\n>", cuts[-1] + (4 << 20))
        cuts.append(len(data) if nxt < 0 else nxt + 1)
    segments = [[(data[a:b], b == len(data))] for a, b in itertools.pairwise(cuts)]
    pool = BufferPool()

    def work(segment: list[tuple[bytes, bool]]) -> None:
        pool.put(profile_segment(segment, "bench", pool).buffers)

    out: dict[int, list[float]] = {n: [] for n in range(1, threads + 1)}
    work(segments[0])
    for _ in range(repeats):
        for n in out:
            with ThreadPoolExecutor(n) as ex:
                start = time.perf_counter()
                list(ex.map(work, segments))
                out[n].append(len(data) / 1e6 / (time.perf_counter() - start))
    return out


_PLAIN_SIZES: dict[Path, int] = {}


def path_plain_size(path: Path) -> int:
    return _PLAIN_SIZES[path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genomes", type=Path, default=DEFAULT_GENOMES)
    parser.add_argument("--size-mbp", type=float, default=1000.0)
    parser.add_argument(
        "--short-mbp",
        type=float,
        default=100.0,
        help="size of the 1-3 kbp short-contig set (fixed cost per contig)",
    )
    add_repeats_option(parser)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    if (args.genomes / "catalog.tsv").exists() or any(args.genomes.glob("*.fa*")):
        seqs, origin = _genome_sequences(args.genomes), f"real genomes in {args.genomes}"
    else:
        seqs, origin = _synthetic_sequences(rng), "synthetic sequences"
    work = Path(tempfile.mkdtemp(prefix="kmervae-bench-", dir=args.workdir))
    try:
        mixed, short = work / "mixed.fa", work / "short.fa"
        n_mixed, bp_mixed = build_fasta(mixed, seqs, int(args.size_mbp * 1e6), 2000, 20000, 1)
        n_short, bp_short = build_fasta(short, seqs, int(args.short_mbp * 1e6), 1000, 3000, 2)
        gz = work / "mixed.fa.gz"
        with open(mixed, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        _PLAIN_SIZES[gz] = mixed.stat().st_size
        print(
            f"inputs from {origin}: {n_mixed} contigs of 2-20 kbp ({bp_mixed / 1e6:.0f} Mbp, "
            f"{mixed.stat().st_size / 1e6:.0f} MB plain, {gz.stat().st_size / 1e6:.0f} MB gzip),"
            f" {n_short} contigs of 1-3 kbp ({bp_short / 1e6:.0f} Mbp)"
        )
        print(
            f"machine: {machine()}; {load_average()}; whole-process runs, "
            f"{runs_note(args.repeats)}\n"
        )
        run_profile(mixed, work / "warm", 1, [])  # compile / load the numba cache once
        thread_counts = sorted({1, args.threads})
        results: dict[tuple[str, int], list[float]] = {}
        print("input\tthreads\tMbp/s\tcontigs/s\tpeak RSS\tseconds")
        for label, path, n, bp in (
            ("plain 2-20 kbp", mixed, n_mixed, bp_mixed),
            ("gzip 2-20 kbp", gz, n_mixed, bp_mixed),
            ("plain 1-3 kbp", short, n_short, bp_short),
        ):
            for threads in thread_counts:
                runs = [run_profile(path, work / "out", threads, []) for _ in range(args.repeats)]
                secs = [r[0] for r in runs]
                results[(label, threads)] = secs
                print(
                    f"{label}\t{threads}\t{spread(bp / 1e6 / t for t in secs).format('{:.0f}')}"
                    f"\t{spread(n / t for t in secs).format('{:.0f}')}"
                    f"\t{spread(r[1] for r in runs).format('{:.0f}', ' MB')}"
                    f"\t{spread(secs).format()}",
                    flush=True,
                )
        isal = spread(isal_speed(gz, args.repeats))
        fasta_per_bp = mixed.stat().st_size / bp_mixed
        gz_mb = bp_mixed * fasta_per_bp / 1e6 / statistics.median(results[("gzip 2-20 kbp", 1)])
        print(
            f"\nisal gzip decompression alone (same file, this run): "
            f"{isal.format('{:.0f}', ' MB/s')}; profile on gzip, 1 thread: {gz_mb:.0f} MB/s of "
            f"FASTA = {100 * gz_mb / isal.median:.0f} % (medians)"
        )
        tiny = work / "tiny.fa"
        tiny.write_bytes(b">t\nACGTACGTAC\n")
        startups = [run_profile(tiny, work / "out", 1, [])[0] for _ in range(args.repeats)]
        t0 = statistics.median(startups)
        medians = {key: statistics.median(secs) for key, secs in results.items()}
        per_bp = (medians[("plain 2-20 kbp", 1)] - t0) / bp_mixed
        fixed = (medians[("plain 1-3 kbp", 1)] - t0 - per_bp * bp_short) / n_short
        print(
            f"start-up (one 10 bp record): {spread(startups).format(unit=' s')}; after "
            f"start-up, plain 2-20 kbp, 1 thread: {1e-6 / per_bp:.0f} Mbp/s (from the medians)"
        )
        print(
            f"fixed cost per contig (1 thread; 1-3 kbp run less start-up and per-bp cost): "
            f"{fixed * 1e6:.1f} us"
        )
        if len(thread_counts) > 1:
            t = thread_counts[-1]
            one, many = results[("plain 2-20 kbp", 1)], results[("plain 2-20 kbp", t)]
            ratio = spread(a / b for a, b in zip(one, many, strict=True))
            print(
                f"scaling 1 -> {t} threads (plain 2-20 kbp, run by run): "
                f"{ratio.format('{:.2f}', 'x')}"
            )
        kernel = kernel_scaling(mixed, thread_counts[-1], args.repeats)
        print(
            "profiling kernel alone, in memory (MB/s of FASTA): "
            + "; ".join(f"{n} thread(s) {spread(r).format('{:.0f}')}" for n, r in kernel.items())
        )
        print(f"# done; {load_average()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
