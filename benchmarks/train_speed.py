#!/usr/bin/env python
"""Whole-epoch training throughput of the reference VAE on synthetic data of real shape.

Writes a synthetic profile dataset (N x 2772 frequencies, float16 on disk, realistic
per-group Dirichlet compositions), then trains the reference architecture for a few epochs
with each configuration and prints samples/s over the whole epoch, validation included
(and the training part alone), per device. The first epoch (warm-up, compilation) is not
counted. Each configuration trains ``--repeats`` times from scratch (same seed); a run's
figure is the median of its counted epochs, and the median of the runs is printed with
their min–max range.

    python benchmarks/train_speed.py                       # CPU: batch 1024, fp32
    python benchmarks/train_speed.py --rows 4000 --epochs 2 --configs 256:fp32   # quick
    python benchmarks/train_speed.py --configs 256:fp32 --noise 0 0.5 0.5:1  # views' cost
    python benchmarks/train_speed.py --device cuda --rows 2000000 \\
        --configs 1024:fp32 1024:bf16 16384:bf16 16384:bf16:reduce-overhead
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _timing import add_repeats_option, load_average, machine, runs_note, spread

from kmervae.io.dataset import DatasetWriter
from kmervae.kmers.layout import FEATURE_LAYOUT
from kmervae.model.config import VAEConfig
from kmervae.model.device import resolve_device
from kmervae.model.train import RuntimeOptions, TrainConfig, train_vae


def synthetic_dataset(path: Path, rows: int, seed: int = 0, block: int = 50_000) -> None:
    """Rows around 64 random compositions, each k-group a frequency vector (float16)."""
    rng = np.random.default_rng(seed)
    layout = FEATURE_LAYOUT
    centres = rng.dirichlet(np.full(layout.n_features, 2.0), size=64).astype(np.float32)
    with DatasetWriter(path, layout, dtype="float16") as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            x = centres[rng.integers(0, 64, n)] * rng.gamma(20, 1 / 20, (n, layout.n_features))
            for k in layout.ks:
                g = layout.group_slice(k)
                x[:, g] /= x[:, g].sum(axis=1, keepdims=True)
            writer.append(
                x.astype(np.float32),
                np.full(n, 5000, np.int64),
                [f"r{start + i}" for i in range(n)],
            )
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory", type=int, default=8192, help="MB for resident data")
    parser.add_argument("--placement", default="auto")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["1024:fp32"],
        help="BATCH:PRECISION[:COMPILE] (precision fp32|bf16; compile "
        "none|default|reduce-overhead); with a 4th field LR",
    )
    parser.add_argument(
        "--noise",
        nargs="+",
        default=["0"],
        metavar="FRACTION[:WEIGHT]",
        help="length-noise views (train --noise-fraction, and --consistency-weight after a "
        "colon) to time with every configuration (default 0: none)",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    add_repeats_option(parser, what="configuration")
    args = parser.parse_args()

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    work = Path(tempfile.mkdtemp(prefix="kmervae-train-bench-", dir=args.workdir))
    try:
        data = work / "data"
        synthetic_dataset(data, args.rows)
        print(
            f"device: {name}; {machine()}; {args.rows} rows x {FEATURE_LAYOUT.n_features} "
            f"(float16 on disk), 90/10 split; reference model {VAEConfig().hidden} -> "
            f"{VAEConfig().latent}; {args.epochs} epochs, first not counted; "
            f"{load_average()}; {runs_note(args.repeats)}\n"
        )
        print("batch\tprecision\tcompile\tlr\tviews\tepoch samples/s\ttrain samples/s\tval loss")
        for spec, noise in itertools.product(args.configs, args.noise):
            fraction, _, weight = noise.partition(":")
            views = {
                "noise_fraction": float(fraction),
                "consistency_weight": float(weight or 0),
            }
            fields = spec.split(":")
            batch, precision = int(fields[0]), fields[1]
            compile_mode = fields[2] if len(fields) > 2 else "none"
            lr = float(fields[3]) if len(fields) > 3 else 1e-4
            wholes, trains, losses, seconds = [], [], [], []
            for r in range(args.repeats):
                records: list[dict] = []
                run = work / f"run-{spec.replace(':', '_')}-{noise.replace(':', '_')}-{r}"
                started = time.perf_counter()
                train_vae(
                    data,
                    run,
                    VAEConfig(),
                    TrainConfig(
                        epochs=args.epochs,
                        batch_size=batch,
                        lr=lr,
                        fidelity_every=0,
                        eval_train_rows=2048,
                        kl_warmup=1,
                        **views,
                    ),
                    runtime=RuntimeOptions(
                        device=args.device,
                        threads=args.threads,
                        precision=precision,
                        placement=args.placement,
                        memory_mb=args.memory,
                        compile=compile_mode,
                    ),
                    on_epoch=records.append,
                )
                seconds.append(time.perf_counter() - started)
                shutil.rmtree(run, ignore_errors=True)
                counted = records[1:] or records
                wholes.append(statistics.median(r["epoch_samples_per_s"] for r in counted))
                trains.append(statistics.median(r["samples_per_s"] for r in counted))
                losses.append(records[-1]["val_loss"])
            print(
                f"{batch}\t{precision}\t{compile_mode}\t{lr:.0e}\t{noise}\t"
                f"{spread(wholes).format('{:.0f}')}\t{spread(trains).format('{:.0f}')}\t"
                f"{spread(losses).format('{:.1f}')}\t"
                f"a run in all: {spread(seconds).format('{:.0f}', ' s')}",
                flush=True,
            )
        print(f"# done; {load_average()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
