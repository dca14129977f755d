"""``kmervae train``: train the VAE on a profile dataset."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from kmervae.cli._common import LogFile, add_common_options, int_list
from kmervae.errors import KmervaeError
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)

# flag -> (config, field, type); None defaults mean "not given": the reference value, or
# on --resume the value the run started with
_MODEL_FLAGS = {
    "ks": "ks",
    "hidden": "hidden",
    "latent": "latent",
    "beta": "beta",
    "dropout": "dropout",
    "distance_weight": "distance_weight",
    "distance_locality": "distance_locality",
    "batchnorm": "batchnorm",
}
_TRAIN_FLAGS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "schedule": "schedule",
    "kl_warmup": "kl_warmup",
    "patience": "plateau_patience",
    "factor": "plateau_factor",
    "min_lr": "min_lr",
    "lr_warmup": "lr_warmup",
    "val_fraction": "val_fraction",
    "early_stopping": "early_stopping",
    "seed": "seed",
    "fidelity_every": "fidelity_every",
    "fidelity_pool": "fidelity_pool",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train the VAE",
        description="Train the VAE on a profile dataset (native or legacy). Defaults are the "
        "reference model and recipe. RUN_DIR receives checkpoints (best, last), "
        "history.jsonl, training_curves.png, the log and the best model as a model folder "
        "(RUN_DIR/model). --resume continues a run from its last checkpoint.",
    )
    parser.add_argument("dataset", metavar="DATASET", help="profile dataset")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="RUN_DIR")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR's run")
    parser.add_argument(
        "--validation",
        metavar="DATASET",
        default=None,
        help="validation dataset (default: a seeded random --val-fraction of DATASET)",
    )
    model = parser.add_argument_group("model (default: the reference architecture)")
    model.add_argument("--ks", type=int_list, help="k-groups, e.g. 5,4,3,2,1 (default 6,...,1)")
    model.add_argument("--hidden", type=int_list, help="hidden widths (default 1024,512)")
    model.add_argument("--latent", type=int, help="latent size (default 384)")
    model.add_argument("--beta", type=float, help="KL weight beta (default 0.05)")
    model.add_argument("--dropout", type=float, help="dropout after hidden layers (default 0)")
    model.add_argument(
        "--distance-weight",
        type=float,
        help="weight of a loss term that keeps latent distances in proportion to CLR "
        "distances within each batch, close pairs first (default 0: the reference loss)",
    )
    model.add_argument(
        "--distance-locality",
        type=float,
        help="how fast the distance term's pair weights fall with distance: exp(-d / L), d "
        "in units of the batch's mean distance (default 0.1)",
    )
    model.add_argument(
        "--no-batchnorm",
        dest="batchnorm",
        action="store_const",
        const=False,
        default=None,
        help="no BatchNorm in hidden layers",
    )
    recipe = parser.add_argument_group("recipe (default: the reference recipe)")
    recipe.add_argument("--epochs", type=int, help="epochs (default 500)")
    recipe.add_argument("--batch-size", type=int, help="batch size (default 1024)")
    recipe.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    recipe.add_argument(
        "--schedule",
        choices=("plateau", "cosine", "constant"),
        help="plateau: x factor after patience epochs without validation gain "
        "(ignores the KL warm-up); cosine: warm-up then cosine decay (default "
        "plateau)",
    )
    recipe.add_argument("--kl-warmup", type=int, help="epochs of linear KL ramp (default 5)")
    recipe.add_argument("--patience", type=int, help="plateau patience (default 20)")
    recipe.add_argument("--factor", type=float, help="plateau factor (default 0.5)")
    recipe.add_argument("--min-lr", type=float, help="learning-rate floor (default 1e-6)")
    recipe.add_argument("--lr-warmup", type=int, help="cosine warm-up epochs (default 5)")
    recipe.add_argument("--val-fraction", type=float, help="validation fraction (default 0.1)")
    recipe.add_argument(
        "--early-stopping",
        type=int,
        help="stop after N epochs without validation gain (default 0: off)",
    )
    recipe.add_argument("--seed", type=int, help="seed of split, init, order (default 42)")
    recipe.add_argument(
        "--fidelity-every",
        type=int,
        help="local-distance fidelity every N epochs (default 10; 0: off)",
    )
    recipe.add_argument(
        "--fidelity-pool", type=int, help="held-out pool size for the fidelity (default 5000)"
    )
    run = parser.add_argument_group("runtime")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("-t", "--threads", type=int, default=None, help="CPU threads")
    run.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 elsewhere",
    )
    run.add_argument(
        "--placement",
        choices=("auto", "resident", "stream"),
        default="auto",
        help="keep the data on the device, or stream it from disk (auto: by --memory)",
    )
    run.add_argument(
        "--memory",
        type=int,
        default=2048,
        metavar="MB",
        help="memory for the data: resident up to this, streamed beyond (default 2048)",
    )
    run.add_argument(
        "--compile",
        choices=("none", "default", "reduce-overhead"),
        default="none",
        help="torch.compile the model (reduce-overhead: CUDA graphs)",
    )
    add_common_options(parser)
    parser.set_defaults(run=run_train)


def _configs(args: argparse.Namespace) -> tuple[Any, Any]:
    from kmervae.model.config import VAEConfig
    from kmervae.model.train import TrainConfig

    model, train = VAEConfig().to_json(), TrainConfig().to_json()
    run_json = args.output / "run.json"
    if args.resume and run_json.exists():
        stored = json.loads(run_json.read_text())
        model.update(stored.get("model_config", {}))
        train.update(stored.get("train_config", {}))
    for flag, name in _MODEL_FLAGS.items():
        if getattr(args, flag) is not None:
            model[name] = getattr(args, flag)
    for flag, name in _TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[name] = getattr(args, flag)
    return VAEConfig.from_json(model), TrainConfig.from_json(train)


def run_train(args: argparse.Namespace) -> int:
    from kmervae.model.train import RuntimeOptions, train_vae

    model_config, train_config = _configs(args)
    if args.output.exists() and not args.resume and not args.force and any(args.output.iterdir()):
        raise KmervaeError(
            f"{args.output} already exists (use --resume to continue it or --force to start over)"
        )
    if args.force and not args.resume and args.output.exists():
        import shutil

        shutil.rmtree(args.output)
    args.output.mkdir(parents=True, exist_ok=True)
    logfile = LogFile(args.output / "kmervae.log", args, train_config.seed)
    try:
        summary = train_vae(
            args.dataset,
            args.output,
            model_config,
            train_config,
            validation=args.validation,
            resume=args.resume,
            overwrite=args.force,
            runtime=RuntimeOptions(
                device=args.device,
                threads=args.threads,
                precision=args.precision,
                placement=args.placement,
                memory_mb=args.memory,
                compile=args.compile,
            ),
            provenance=run_provenance(args.argv, train_config.seed),
        )
        best = (
            f"best epoch {summary.best_epoch + 1} (validation loss {summary.best_val_loss:.4g})"
            if summary.best_epoch is not None
            else "no epoch after the KL warm-up yet"
        )
        log.info(
            "%d epochs run%s; %s; model written to %s",
            summary.epochs_run,
            " (stopped early)" if summary.stopped_early else "",
            best,
            summary.model_dir,
        )
    finally:
        logfile.close()
    return 0
