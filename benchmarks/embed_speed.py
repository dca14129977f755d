"""Embedding speed: contigs per second of ``kmervae embed``, whole process and warm.

Builds the reference architecture (2772 -> 1024 -> 512 -> 384, random weights, saved as a
model folder), exports it to ONNX with ``kmervae export MODEL -o OUT.onnx``, and writes
synthetic datasets of the real shape (6…1-mer profiles, each k-group a Dirichlet draw). Then:

- whole process: ``python -m kmervae embed MODEL DATASET -o OUT`` in a fresh process per
  run, ``--repeats`` runs, peak RSS from ``os.wait4``; for the torch model folder and the
  ONNX file, on ``--rows`` rows and on ``--big-rows`` rows (memory must stay flat);
- warm: in one process, after a warm-up batch, the encoder alone on the same rows (also
  with PyTorch's default BLAS instead of the fused oneDNN path), and ``embed_profiles``
  with the model already loaded (read, hash, check, encode, write), ``--repeats`` runs
  each.

Every figure is printed as the median of its runs with the min–max range.

The research encoder (Keras 3 + JAX) took 5.3–6.9 s whole process for 20 000 rows on a
2-core machine (about 3–4 k contigs/s) and 16–20 k contigs/s warm.

Usage: ``python benchmarks/embed_speed.py [--rows 20000] [--big-rows 200000] [--repeats 3]
[--work DIR]`` (``--rows 2000 --big-rows 0``: a quick check)
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import add_repeats_option, load_average, machine, repeat_results, runs_note, spread
from fresh_process import whole_process

from kmervae.io.dataset import DatasetWriter
from kmervae.kmers.layout import FEATURE_LAYOUT

RESEARCH = "research Keras 3 + JAX encoder: 20 000 rows in 5.3–6.9 s whole process, 16–20 k/s warm"


def synthetic_profiles(n: int, seed: int = 0) -> np.ndarray:
    """float32 (n x 2772): each k-group one Dirichlet(0.5) draw, like real frequency rows."""
    rng = np.random.default_rng(seed)
    groups = [rng.dirichlet(np.full(w, 0.5), size=n) for w in FEATURE_LAYOUT.widths]
    return np.concatenate(groups, axis=1).astype(np.float32)


def write_dataset(path: Path, block: np.ndarray, n_rows: int) -> Path:
    """A native dataset of ``n_rows`` rows, ``block`` repeated (streamed, flat memory)."""
    if path.exists():
        return path
    with DatasetWriter(path, FEATURE_LAYOUT) as writer:
        done = 0
        while done < n_rows:
            take = min(len(block), n_rows - done)
            ids = [f"contig_{i}" for i in range(done, done + take)]
            writer.append(block[:take], np.full(take, 5000, np.int64), ids)
            done += take
        writer.close()
    return path


def build_model(work: Path) -> tuple[Path, Path | None, str]:
    import torch

    from kmervae.model.config import VAEConfig
    from kmervae.model.files import save_model
    from kmervae.model.vae import VAE

    model = work / "model"
    if not model.exists():
        torch.manual_seed(0)
        save_model(VAE(VAEConfig()).eval(), model)
    onnx = work / "encoder.onnx"
    note = ""
    if not onnx.exists():
        result = subprocess.run(
            [sys.executable, "-m", "kmervae", "export", str(model), "-o", str(onnx), "-q"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            note = f"ONNX rows skipped: 'kmervae export -o' failed ({last})"
            return model, None, note
    return model, onnx, note


def time_embed(
    model: Path, dataset: Path, out: Path, repeats: int, extra: list[str]
) -> list[tuple[float, float]]:
    """(wall seconds, peak RSS MiB) of ``repeats`` fresh ``kmervae embed`` processes."""
    runs = [
        whole_process(["embed", str(model), str(dataset), "-o", str(out), "--force", "-q", *extra])
        for _ in range(repeats)
    ]
    shutil.rmtree(out, ignore_errors=True)
    return runs


def warm_rate(encoder, x: np.ndarray, batch_size: int) -> float:
    """Contigs/s of ``encoder.encode`` over ``x`` in batches, after one warm-up batch."""
    encoder.encode(x[:batch_size])
    started = time.perf_counter()
    for start in range(0, len(x), batch_size):
        encoder.encode(x[start : start + batch_size])
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--big-rows", type=int, default=200_000, help="0: skip the big runs")
    add_repeats_option(parser)
    parser.add_argument("--batch-size", type=int, default=0, help="0: the kmervae default")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument(
        "--sweep", action="store_true", help="also the warm rate for several batch sizes"
    )
    parser.add_argument("--work", type=Path, help="keep data here (default: a temp folder)")
    args = parser.parse_args()

    from kmervae.model.embed import DEFAULT_BATCH_SIZE, TorchEncoder, available_threads

    batch = args.batch_size or DEFAULT_BATCH_SIZE
    threads = args.threads or available_threads()
    work = args.work or Path(tempfile.mkdtemp(prefix="kmervae-embed-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}, {threads} threads used; "
          f"python {platform.python_version()}; data in {work}; {load_average()}; "
          f"{runs_note(args.repeats)}")  # fmt: skip
    x = synthetic_profiles(args.rows)
    small = write_dataset(work / f"ds{args.rows}", x, args.rows)
    big = write_dataset(work / f"ds{args.big_rows}", x, args.big_rows) if args.big_rows else None
    model, onnx, note = build_model(work)
    extra = ["--batch-size", str(batch), "-t", str(threads)]

    startup = spread(
        s for s, _ in repeat_results(lambda: whole_process(["--version"]), args.repeats)
    )
    rows = []
    backends = [("torch", model)] + ([("onnx", onnx)] if onnx else [])
    for name, path in backends:
        for dataset, n in ((small, args.rows), (big, args.big_rows)):
            if dataset is None:
                continue
            rows.append((name, n, time_embed(path, dataset, work / "out", args.repeats, extra)))

    from kmervae.model.embed import embed_profiles
    from kmervae.model.files import load_model

    encoders = {"torch": TorchEncoder(load_model(model).encoder, device="cpu", threads=threads)}
    plain = TorchEncoder(load_model(model).encoder, device="cpu", threads=threads, fast=False)
    if onnx:
        from kmervae.model.onnx_runtime import OnnxEncoder

        encoders["onnx"] = OnnxEncoder(onnx, intra_op_num_threads=threads)
    reps = args.repeats
    warm = {name: [warm_rate(enc, x, batch) for _ in range(reps)] for name, enc in encoders.items()}
    warm["torch (plain BLAS)"] = [warm_rate(plain, x, batch) for _ in range(reps)]
    for name, enc in encoders.items():  # read + check + encode + write, model loaded
        warm[f"{name} embed_profiles"] = [
            embed_profiles(
                enc, small, work / "out", batch_size=batch, overwrite=True
            ).rows_per_second
            for _ in range(reps)
        ]
    shutil.rmtree(work / "out", ignore_errors=True)

    print(f"batch size {batch}; whole process = fresh 'python -m kmervae embed' incl. start-up "
          f"(bare 'python -m kmervae --version': {startup.format(unit=' s')})")  # fmt: skip
    print()
    print("backend\trows\twall s\tcontigs/s\tpeak RSS")
    for name, n, runs in rows:
        print(
            f"{name}\t{n}\t{spread(s for s, _ in runs).format()}"
            f"\t{spread(n / s for s, _ in runs).format('{:,.0f}')}"
            f"\t{spread(r for _, r in runs).format('{:,.0f}', ' MiB')}"
        )
    for name, rates in warm.items():
        print(
            f"{name} warm\t{args.rows}\t{spread(args.rows / r for r in rates).format()}"
            f"\t{spread(rates).format('{:,.0f}')}"
        )
    if note:
        print(note)
    print(f"reference: {RESEARCH}")
    if args.sweep:
        print()
        print("warm contigs/s by batch size:")
        for size in (256, 512, 1024, 2048, 4096, 8192):
            cells = [
                f"{name} {spread(warm_rate(enc, x, size) for _ in range(reps)).format('{:,.0f}')}"
                for name, enc in encoders.items()
            ]
            print(f"  {size:>5}: " + ", ".join(cells))
    print(f"# done; {load_average()}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
