"""``kmervae train``: train the VAE on a profile dataset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae._extras import require
from kmervae.cli._common import (
    Bounded,
    LogFile,
    add_common_options,
    add_device_option,
    add_threads_option,
    fraction,
    k_groups,
    length_range,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    positive_int_list,
    seed_type,
)
from kmervae.errors import KmervaeError, Terminated
from kmervae.model.config import (
    MODEL_PRESETS,
    RuntimeOptions,
    TrainConfig,
    VAEConfig,
    check_run_folder,
    read_run_record,
)
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
    "noise_fraction": "noise_fraction",
    "consistency_weight": "consistency_weight",
}


dropout_type = Bounded(float, 0, 1, high_open=True)
noise_fraction_type = Bounded(float, 0, 1)


def noise_lengths_type(text: str) -> tuple[int, int]:
    """``MIN-MAX`` simulated lengths of length-noise views, MIN at least 10 bp."""
    low, high = length_range(text)
    if low < 10:
        raise argparse.ArgumentTypeError(f"MIN must be at least 10 bp, got {text!r}")
    return low, high


fidelity_pool_type = Bounded(int, 10)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train the VAE",
        description="Train the VAE on a profile dataset (native or legacy). Defaults are the "
        "reference model and recipe. RUN_DIR receives checkpoints (best, last), "
        "history.jsonl, training_curves.png, the log and the best model as a model folder "
        "(RUN_DIR/model). --resume continues a run from its last checkpoint. Everything is "
        "checked before anything is written; a new run is built in a temporary folder beside "
        "RUN_DIR and moved there once its first epoch is checkpointed, so a run that fails or "
        "is stopped before then leaves nothing behind.",
    )
    parser.add_argument("dataset", metavar="DATASET", help="profile dataset")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="RUN_DIR", help="the run folder"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR's run from its last checkpoint, with its recorded settings and "
        "on the same data (checked by SHA-256)",
    )
    parser.add_argument(
        "--validation",
        metavar="DATASET",
        default=None,
        help="validation dataset (default: a seeded random --val-fraction of DATASET)",
    )
    model = parser.add_argument_group("model (default: the reference architecture)")
    model.add_argument(
        "--preset",
        choices=tuple(MODEL_PRESETS),
        help="start from a named architecture, the flags below change it: reference "
        "(6..1-mers, the default) or research (5..1-mers, 692 features, dropout 0.1, the "
        "research's later model)",
    )
    model.add_argument("--ks", type=k_groups, help="k-groups, e.g. 5,4,3,2,1 (default 6,...,1)")
    model.add_argument("--hidden", type=positive_int_list, help="hidden widths (default 1024,512)")
    model.add_argument("--latent", type=positive_int, help="latent size (default 384)")
    model.add_argument("--beta", type=non_negative_float, help="KL weight beta (default 0.05)")
    model.add_argument(
        "--dropout", type=dropout_type, help="dropout after hidden layers (default 0)"
    )
    model.add_argument(
        "--distance-weight",
        type=non_negative_float,
        help="weight of a loss term that keeps latent distances in proportion to CLR "
        "distances within each batch, close pairs first (default 0: the reference loss)",
    )
    model.add_argument(
        "--distance-locality",
        type=positive_float,
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
    recipe.add_argument("--epochs", type=positive_int, help="epochs (default 500)")
    recipe.add_argument("--batch-size", type=positive_int, help="batch size (default 1024)")
    recipe.add_argument("--lr", type=positive_float, help="learning rate (default 1e-4)")
    recipe.add_argument(
        "--schedule",
        choices=("plateau", "cosine", "constant"),
        help="plateau: x factor after patience epochs without validation gain "
        "(ignores the KL warm-up); cosine: warm-up then cosine decay (default "
        "plateau)",
    )
    recipe.add_argument(
        "--kl-warmup", type=non_negative_int, help="epochs of linear KL ramp (default 5)"
    )
    recipe.add_argument("--patience", type=non_negative_int, help="plateau patience (default 20)")
    recipe.add_argument("--factor", type=fraction, help="plateau factor, in (0, 1) (default 0.5)")
    recipe.add_argument(
        "--min-lr", type=non_negative_float, help="learning-rate floor, at most --lr (default 1e-6)"
    )
    recipe.add_argument(
        "--lr-warmup", type=non_negative_int, help="cosine warm-up epochs (default 5)"
    )
    recipe.add_argument(
        "--val-fraction", type=fraction, help="validation fraction, in (0, 1) (default 0.1)"
    )
    recipe.add_argument(
        "--early-stopping",
        type=non_negative_int,
        help="stop after N epochs without validation gain (default 0: off)",
    )
    recipe.add_argument("--seed", type=seed_type, help="seed of split, init, order (default 42)")
    recipe.add_argument(
        "--fidelity-every",
        type=non_negative_int,
        help="local-distance fidelity every N epochs (default 10; 0: off)",
    )
    recipe.add_argument(
        "--fidelity-pool",
        type=fidelity_pool_type,
        help="held-out pool size for the fidelity, at least 10 (default 5000)",
    )
    noise = parser.add_argument_group(
        "length-noise views (default off)",
        "Train the encoder to see through the noise of short contigs: a share of each "
        "batch's rows is encoded as a view resampled from its profile at a shorter simulated "
        "length (an exact multinomial draw per k-group, the length log-uniform in a range); "
        "the clean profile stays the reconstruction target.",
    )
    noise.add_argument(
        "--noise-fraction",
        type=noise_fraction_type,
        help="share of each batch's rows seen as a view, in [0, 1] (default 0: off)",
    )
    noise.add_argument(
        "--noise-lengths",
        type=noise_lengths_type,
        metavar="MIN-MAX",
        help="simulated contig lengths in bp, drawn log-uniform (default 1000-10000)",
    )
    noise.add_argument(
        "--consistency-weight",
        type=non_negative_float,
        help="also encode each view's clean row and pull the view's mean towards it with "
        "this weight (scale-free, like --distance-weight; default 0)",
    )
    run = parser.add_argument_group("runtime")
    add_device_option(run, "auto (default: CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    add_threads_option(run, "CPU threads")
    run.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on CUDA devices that have it, fp32 elsewhere; bf16 also "
        "works on the CPU",
    )
    run.add_argument(
        "--placement",
        choices=("auto", "resident", "stream"),
        default="auto",
        help="keep the data on the device, or stream it from disk (auto: by --memory)",
    )
    run.add_argument(
        "--memory",
        type=positive_int,
        default=2048,
        metavar="MB",
        help="memory for the data: resident up to this, streamed beyond (default 2048)",
    )
    run.add_argument(
        "--compile",
        choices=("none", "default", "reduce-overhead"),
        default="none",
        help="torch.compile the model (reduce-overhead: CUDA graphs, CUDA only)",
    )
    add_common_options(
        parser,
        force_help="replace an existing run in RUN_DIR: the new run is built beside it and "
        "takes its place only when its first epoch is checkpointed, so the old run survives "
        "a new one that fails or is stopped before then",
    )
    parser.set_defaults(run=run_train)


def _configs(args: argparse.Namespace) -> tuple[VAEConfig, TrainConfig]:
    model = MODEL_PRESETS[args.preset or "reference"].to_json()
    train = TrainConfig().to_json()
    if args.resume and (args.output / "run.json").exists():
        stored = read_run_record(args.output)
        model.update(stored.get("model_config", {}))
        train.update(stored.get("train_config", {}))
    for flag, name in _MODEL_FLAGS.items():
        if getattr(args, flag) is not None:
            model[name] = getattr(args, flag)
    for flag, name in _TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[name] = getattr(args, flag)
    if args.noise_lengths is not None:
        train["noise_min_length"], train["noise_max_length"] = args.noise_lengths
    return VAEConfig.from_json(model), TrainConfig.from_json(train)


def _record_in_log(logfile: LogFile, message: str) -> None:
    """Write ``message`` into the run's log file only (the console has it already)."""
    record = logging.LogRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    logfile.handler.handle(record)


def run_train(args: argparse.Namespace) -> int:
    # the run folder and the options first: refused before torch or any data is loaded
    check_run_folder(args.output, resume=args.resume, overwrite=args.force)
    model_config, train_config = _configs(args)
    require("torch", extra="train", purpose="training")

    from kmervae.model.train import train_vae

    logfiles: list[LogFile] = []

    def open_log(folder: Path) -> None:
        logfiles.append(LogFile(folder / "kmervae.log", args, train_config.seed))

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
                threads=args.threads or None,
                precision=args.precision,
                placement=args.placement,
                memory_mb=args.memory,
                compile=args.compile,
            ),
            provenance=run_provenance(args.argv, train_config.seed),
            on_run_dir=open_log,
        )
        best = (
            f"best epoch {summary.best_epoch} (validation loss {summary.best_val_loss:.4g})"
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
    except (KmervaeError, OSError) as exc:
        for logfile in logfiles:
            _record_in_log(logfile, f"kmervae train: error: {exc}")
        raise
    except KeyboardInterrupt as exc:
        stop = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        for logfile in logfiles:
            _record_in_log(logfile, f"kmervae train: {stop}")
        raise
    finally:
        for logfile in logfiles:
            logfile.close()
    return 0
