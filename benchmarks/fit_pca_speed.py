"""fit-pca speed and memory: ``kmervae fit-pca`` as a fresh process on synthetic profiles of
the reference layout (2772 features), at several row counts, so that one run shows whether
time and peak RSS grow with the rows (the fit is out of core: they should not, beyond the
read itself).

Usage: ``python benchmarks/fit_pca_speed.py [--rows 5000,30000] [--components 384]
[--repeats 3] [--work DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _timing import add_repeats_option, load_average, machine, runs_note, spread
from embed_speed import synthetic_profiles, write_dataset
from fresh_process import whole_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000,30000", help="row counts, comma-separated")
    parser.add_argument("--components", type=int, default=384)
    parser.add_argument("--work", type=Path, help="folder for the data (default: a temporary one)")
    add_repeats_option(parser)
    args = parser.parse_args()
    counts = [int(x) for x in args.rows.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-fit-pca-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    block = synthetic_profiles(min(max(counts), 20_000))
    print(
        f"# {machine()}; {args.components} components of 2772 features; "
        f"{load_average()}; {runs_note(args.repeats)}"
    )
    print("rows\twall s\tpeak RSS MiB")
    try:
        for n in counts:
            data = write_dataset(work / f"rows-{n}", block, n)
            walls, peaks = [], []
            for _ in range(args.repeats):
                out = work / f"pca-{n}"
                shutil.rmtree(out, ignore_errors=True)
                wall, rss = whole_process(
                    ["fit-pca", str(data), "-o", str(out), "--components",
                     str(args.components), "-q"]
                )  # fmt: skip
                walls.append(wall)
                peaks.append(rss)
            print(f"{n}\t{spread(walls).format()}\t{spread(peaks).format()}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"# done; {load_average()}")


if __name__ == "__main__":
    main()
