#!/usr/bin/env python
"""Wall time and peak memory of ``kmervae demo``, the whole pipeline on the shipped genomes.

Runs ``python -m kmervae demo -o OUT --size SIZE`` in a fresh process (``--repeats`` times,
OUT removed before each run) and prints its wall time, the peak RSS of the largest process
and the peak of the summed RSS of kmervae and every program it starts, against the target:
the full demo in under 10 minutes and 4 GB on a 2-core machine.

    python benchmarks/demo.py                 # the full demo, once
    python benchmarks/demo.py --size small    # a quick check
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from _timing import add_repeats_option, load_average, machine, runs_note, spread
from fresh_process import whole_process_tree

#: the target of the full demo on a 2-core machine
TARGET_SECONDS = 600
TARGET_GIB = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--epochs", type=int, help="--epochs of the demo (default: its own)")
    parser.add_argument("--threads", type=int, default=0, help="-t of the demo (default 0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the last demo folder")
    add_repeats_option(parser, default=1, what="demo")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-demo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "demo"
    argv = ["demo", "-o", str(out), "--size", args.size, "--seed", str(args.seed)]
    argv += ["-t", str(args.threads), "-q"]
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    print(f"# {machine()}; {load_average()}; {runs_note(args.repeats)}", flush=True)
    print(f"# kmervae {' '.join(argv)}", flush=True)
    runs = []
    try:
        for _ in range(args.repeats):
            shutil.rmtree(out, ignore_errors=True)
            runs.append(whole_process_tree(argv))
        manifest = json.loads((out / "inputs" / "manifest.json").read_text())
        seconds = spread(s for s, _, _ in runs)
        largest = spread(r / 1024 for _, r, _ in runs)
        tree = spread(t / 1024 for _, _, t in runs)
        print(
            f"demo --size {args.size}: {manifest['n_contigs']:,} contigs "
            f"({manifest['n_bases'] / 1e6:.1f} Mbp) in {len(manifest['samples'])} samples",
            flush=True,
        )
        print(f"wall time\t{seconds.format('{:.0f}', ' s')}")
        print(f"peak RSS, largest process\t{largest.format('{:.2f}', ' GiB')}")
        print(f"peak RSS, kmervae and the programs it runs\t{tree.format('{:.2f}', ' GiB')}")
        _print_stages(out)
        if args.size == "full":
            met = seconds.median < TARGET_SECONDS and tree.median < TARGET_GIB
            print(
                f"target: under {TARGET_SECONDS // 60} min and {TARGET_GIB:g} GB on a 2-core "
                f"machine: {'met' if met else 'NOT met'}"
            )
        print(f"# {load_average()} at the end")
    finally:
        if not args.keep:
            shutil.rmtree(work if args.work is None else out, ignore_errors=True)
        else:
            print(f"# kept {out}")


def _print_stages(out: Path) -> None:
    """Each stage's wall time, where the pipeline recorded them."""
    for name in ("pipeline.json", "manifest.json"):
        path = out / name
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        stages = record.get("stages")
        if isinstance(stages, list):
            for stage in stages:
                if isinstance(stage, dict) and "seconds" in stage:
                    print(f"  {stage.get('name', '?')}\t{stage['seconds']:.1f} s")
        elif isinstance(stages, dict):
            for stage, info in stages.items():
                if isinstance(info, dict) and "seconds" in info:
                    print(f"  {stage}\t{info['seconds']:.1f} s")
        return


if __name__ == "__main__":
    main()
