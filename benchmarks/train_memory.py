#!/usr/bin/env python
"""Peak memory of ``kmervae train`` on a dataset larger than RAM (streamed placement).

Writes a synthetic float16 profile dataset of ``--gb`` gigabytes (default 26, more than this
machine's 24 GB), then runs one epoch of ``kmervae train --placement stream`` in a fresh
process with a small network (so that reading the data, not arithmetic, dominates) and
prints the wall time, rows/s and the process's peak RSS: the median of ``--repeats`` fresh
runs on the same dataset, with the min–max range.

    python benchmarks/train_memory.py --gb 26 --workdir /big/disk
    python benchmarks/train_memory.py --gb 0.3   # a quick check (at least 10 batches)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import add_repeats_option, load_average, machine, runs_note, spread

from kmervae.io.dataset import DatasetWriter
from kmervae.kmers.layout import FEATURE_LAYOUT


def write_big_dataset(path: Path, gigabytes: float, block: int = 20_000) -> int:
    """float16 rows around random compositions; one block is generated and varied."""
    layout = FEATURE_LAYOUT
    rows = int(gigabytes * 1e9 / (layout.n_features * 2))
    rng = np.random.default_rng(0)
    base = rng.dirichlet(np.full(layout.n_features, 2.0), size=block).astype(np.float32)
    for k in layout.ks:
        g = layout.group_slice(k)
        base[:, g] /= base[:, g].sum(axis=1, keepdims=True)
    with DatasetWriter(path, layout, dtype="float16") as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            x = np.roll(base[:n], start // block % 97, axis=0)
            writer.append(x, np.full(n, 5000, np.int64), [f"r{start + i}" for i in range(n)])
        writer.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=26.0)
    parser.add_argument("--memory", type=int, default=512, help="--memory of kmervae train")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the dataset")
    add_repeats_option(parser, what="epoch")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kmervae-train-mem-", dir=args.workdir))
    try:
        started = time.perf_counter()
        rows = write_big_dataset(work / "data", args.gb)
        size = (work / "data" / "features.npy").stat().st_size
        print(
            f"{machine()}; dataset: {rows} rows, features.npy {size / 1e9:.1f} GB (float16), "
            f"written in {time.perf_counter() - started:.0f} s; {load_average()}; "
            f"{runs_note(args.repeats)}"
        )
        cmd = [
            sys.executable,
            "-m",
            "kmervae",
            "train",
            str(work / "data"),
            "-o",
            str(work / "run"),
            "--placement",
            "stream",
            "--memory",
            str(args.memory),
            "--hidden",
            "64,32",
            "--latent",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "4096",
            "--fidelity-every",
            "0",
            "--kl-warmup",
            "0",
            "-q",
        ]
        seconds, peaks = [], []
        for _ in range(args.repeats):
            shutil.rmtree(work / "run", ignore_errors=True)
            started = time.perf_counter()
            proc = subprocess.Popen(cmd)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds.append(time.perf_counter() - started)
            peaks.append(usage.ru_maxrss / 1024)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit("kmervae train failed")
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        print(
            f"one streamed epoch (train + validation): {spread(seconds).format('{:.0f}', ' s')}"
            f", {spread(rows / s for s in seconds).format('{:.0f}', ' rows/s')}; peak RSS "
            f"{spread(peaks).format('{:.0f}', ' MB')} (machine RAM {ram:.0f} GiB)"
        )
        print(f"# done; {load_average()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
