"""``kmervae embed``: mu (z_mean) of every profile row, into a store or through a pipe.

This module must not import torch: an ``.onnx`` model is run with ONNX Runtime alone, and the
command line imports every subcommand module when it starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kmervae.cli._common import (
    Bounded,
    LogFile,
    add_common_options,
    add_device_option,
    add_threads_option,
    progress_bar,
)
from kmervae.errors import KmervaeError
from kmervae.io.atomic import check_writable
from kmervae.io.dataset import open_dataset
from kmervae.io.embeddings import EmbeddingsWriter
from kmervae.model.embed import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    available_threads,
    embed_npy_stream,
    embed_profiles,
)
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "embed",
        help="embed profiles with a trained model",
        description=(
            "Embed every row of a profile dataset: mu (z_mean) of the model's encoder, "
            "optionally sigma, with the ids, lengths (and GC, sources) carried over. "
            "MODEL is a model folder, a training checkpoint .pt, an encoder exported "
            "with 'kmervae export -o OUT.onnx' (.onnx: run with ONNX Runtime, without PyTorch), "
            "or a PCA model folder from 'kmervae fit-pca' (NumPy; mu is the projection, "
            "there is no sigma). "
            "DATASET '-' is pipe mode: one .npy of profiles on stdin (N x F, or N x (1+F) "
            "with the length column first), one float32 .npy of mu (N x latent) on stdout."
        ),
    )
    parser.add_argument(
        "model", metavar="MODEL", help="model folder (VAE or PCA), checkpoint .pt, or .onnx"
    )
    parser.add_argument(
        "dataset", metavar="DATASET", help="profile dataset (folder or legacy NAME.npy); '-': pipe"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="EMB",
        help="output embedding store (a folder); not used in pipe mode",
    )
    parser.add_argument("--sigma", action="store_true", help="also write sigma = exp(logvar / 2)")
    parser.add_argument(
        "--batch-size",
        type=Bounded(int, 1, MAX_BATCH_SIZE),
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"rows encoded at once, 1 to {MAX_BATCH_SIZE} (default: {DEFAULT_BATCH_SIZE})",
    )
    add_threads_option(parser, "CPU threads for the encoder")
    add_device_option(
        parser, "auto (default: CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps; .onnx: CPU"
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    threads = args.threads or available_threads()
    if args.dataset == "-":
        return _run_pipe(args, threads)
    if args.output is None:
        raise KmervaeError("-o/--output is required (or give DATASET '-' for pipe mode)")
    if not Path(args.model).exists():
        raise KmervaeError(
            f"{args.model}: no such model (expected a model folder, a .pt or a .onnx)"
        )
    check_writable(args.output, args.force)
    dataset = open_dataset(args.dataset)
    bar = progress_bar(args, dataset.n_rows, unit="rows", desc="embed")
    logs: list[LogFile] = []

    def attach_log(writer: EmbeddingsWriter) -> None:
        logs.append(LogFile(writer.directory / "kmervae.log", args))

    try:
        summary = embed_profiles(
            args.model,
            dataset,
            args.output,
            batch_size=args.batch_size,
            threads=threads,
            device=args.device,
            sigma=args.sigma,
            progress=bar.update,
            provenance=run_provenance(args.argv),
            overwrite=args.force,
            on_writer=attach_log,
        )
    finally:
        bar.close()
        for logfile in logs:
            logfile.close()
    log.debug("wrote %s (%d x %d)", summary.output, summary.n_rows, summary.latent)
    return 0


def _run_pipe(args: argparse.Namespace, threads: int) -> int:
    if args.output is not None:
        raise KmervaeError("pipe mode (DATASET '-') writes to stdout: drop -o")
    if args.sigma:
        raise KmervaeError("--sigma needs an output store (-o); pipe mode writes mu only")
    stdout = sys.stdout.buffer
    if stdout.isatty():
        raise KmervaeError("pipe mode writes a binary .npy to stdout: redirect it to a file")
    bar = progress_bar(args, None, unit="rows", desc="embed")
    try:
        embed_npy_stream(
            args.model,
            sys.stdin.buffer,
            stdout,
            batch_size=args.batch_size,
            threads=threads,
            device=args.device,
            progress=bar.update,
        )
    finally:
        bar.close()
    return 0
