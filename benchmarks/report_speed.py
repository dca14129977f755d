#!/usr/bin/env python
"""Wall time, peak RSS and page size of ``kmervae report`` on synthetic maps.

Writes maps of N points (Gaussian blobs, as the map writer lays them out, without t-SNE),
then runs ``python -m kmervae report MAP -o report.html`` (coloured by GC, a tooltip per
point) in a fresh process ``--repeats`` times per size. Up to ``--max-points`` (the
report's default, 100 000) every point is drawn; beyond it a seeded sample is drawn and a
density image of every point is added, so time and page size should level off while
memory grows only with the drawn sample and the memory-mapped coordinates.

    python benchmarks/report_speed.py                      # 100 000 and 1 000 000 points
    python benchmarks/report_speed.py --sizes 20000        # a quick check
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _timing import add_repeats_option, load_average, machine, runs_note, spread
from fresh_process import whole_process

from kmervae.viz.maps import FORMAT_NAME, SCHEMA_VERSION, write_map_arrays

#: ids written per block
BLOCK = 100_000


def write_map(folder: Path, n: int, clusters: int, seed: int) -> None:
    """A map folder of ``n`` points in ``clusters`` blobs."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-60, 60, size=(clusters, 2))
    label = rng.integers(0, clusters, n)
    xy = (centres[label] + rng.normal(scale=4.0, size=(n, 2))).astype(np.float32)
    gc = rng.uniform(0.25, 0.70, n).astype(np.float32)
    lengths = rng.integers(2_000, 20_000, n).astype(np.int64)
    folder.mkdir(parents=True)
    blocks = ([f"contig_{i}" for i in range(s, min(s + BLOCK, n))] for s in range(0, n, BLOCK))
    ids_sha = write_map_arrays(folder, xy, lengths, gc, blocks)
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "n_rows": n,
        "method": "tsne",
        "ids_sha256": ids_sha,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="map sizes, comma-separated")
    parser.add_argument("--clusters", type=int, default=30, help="blobs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    add_repeats_option(parser, default=3, what="report")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-report-bench-"))
    print(f"# {machine()}; {load_average()}; {runs_note(args.repeats)}", flush=True)
    try:
        for n in sizes:
            case = work / f"n{n}"
            shutil.rmtree(case, ignore_errors=True)
            write_map(case / "map", n, args.clusters, args.seed)
            out = case / "report.html"
            argv = ["report", str(case / "map"), "-o", str(out), "--force", "-q"]
            runs = [whole_process(argv) for _ in range(args.repeats)]
            size_mib = out.stat().st_size / 2**20
            print(
                f"report of {n:,} points: {spread(s for s, _ in runs).format(unit=' s')}, "
                f"peak RSS {spread(r for _, r in runs).format('{:.0f}', ' MiB')}, "
                f"page {size_mib:.1f} MiB",
                flush=True,
            )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"# {load_average()} at the end")


if __name__ == "__main__":
    main()
