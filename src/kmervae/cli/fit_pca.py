"""``kmervae fit-pca``: principal components of the CLR of a profile dataset, as a model.

This module must not import torch: a PCA model is fitted and run with NumPy alone.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import (
    Bounded,
    LogFile,
    add_common_options,
    add_threads_option,
    progress_bar,
    seed_type,
)
from kmervae.io.atomic import check_writable
from kmervae.io.dataset import open_dataset
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fit-pca",
        help="fit PCA of the CLR profiles as a model (no GPU, no PyTorch)",
        description=(
            "Fit the first N principal components of the per-group CLR of a profile dataset "
            "and write them as a PCA model folder, which embed, search and evaluate accept "
            "in place of a VAE model. The fit runs out of core: the mean and the covariance "
            "are accumulated in float64 block by block, then decomposed exactly; each axis "
            "is signed so that its largest loading is positive. Needs NumPy only."
        ),
    )
    parser.add_argument(
        "dataset", type=Path, metavar="DATASET", help="profile dataset (folder or legacy NAME.npy)"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="MODEL", help="model folder to write"
    )
    parser.add_argument(
        "--components",
        required=True,
        type=Bounded(int, 1),
        metavar="N",
        help="components kept, at least 1 and at most the dataset's features (2772 for 6…1-mers)",
    )
    parser.add_argument(
        "--sample",
        type=Bounded(int, 2),
        default=None,
        metavar="ROWS",
        help="fit on a seeded sample of ROWS rows, 2 to the dataset's rows (default: all rows)",
    )
    parser.add_argument(
        "--seed", type=seed_type, default=42, help="seed of --sample, 0 to 2^32-1 (default 42)"
    )
    add_threads_option(parser, "BLAS threads of the fit")
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kmervae.model.pca_folder import check_pca_request, fit_pca_model

    check_writable(args.output, args.force)
    dataset = open_dataset(args.dataset)
    rows = check_pca_request(dataset, args.components, args.sample)
    bar = progress_bar(args, rows, unit="rows", desc="fit-pca")
    logs: list[LogFile] = []

    def attach_log(folder: Path) -> None:
        logs.append(LogFile(folder / "kmervae.log", args, args.seed))

    try:
        fit_pca_model(
            dataset,
            args.output,
            args.components,
            sample=args.sample,
            seed=args.seed,
            threads=args.threads or None,
            progress=bar.update,
            provenance=run_provenance(args.argv, args.seed),
            overwrite=args.force,
            on_folder=attach_log,
        )
    finally:
        bar.close()
        for logfile in logs:
            logfile.close()
    return 0
