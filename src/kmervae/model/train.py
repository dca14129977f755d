"""Training loop of the VAE: seeded split, KL warm-up, schedules, checkpoints, resume.

A run directory holds everything about one training run::

    run.json              model and training config, dataset (with checksums), split,
                          provenance, resumes
    kmervae.log           full log (appended on resume)
    history.jsonl         one JSON line per epoch (appended; a resume continues it)
    training_curves.png   redrawn at most every 30 s and after the last epoch
    checkpoints/last.pt   after every epoch: weights, optimizer, schedule, epoch, RNG state
    checkpoints/best.pt   best validation loss after the KL warm-up
    model/                the best model as a published model folder (config.json,
                          model.safetensors, model card)

Epochs are counted from 1 everywhere: in the log, ``history.jsonl``, the checkpoints,
``run.json`` and :class:`TrainSummary`. (The schedules in :mod:`kmervae.model.schedules` take
the 0-based index of an epoch.) One epoch's work is in :mod:`kmervae.model.epoch`; the run
folder's history and placement in :mod:`kmervae.model.run_folder`.

Everything about a request is checked before anything is written: the run folder, the
device and runtime options, the data (which must hold the model's k-groups and at least one
batch per part) and, on resume, that the configuration and the data (their checksums) are
the ones the run started with. A new run is built in a temporary folder beside its run folder
and moved into place when its first checkpoint has landed, replacing an earlier run there
only then; a run that fails or is stopped before that leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kmervae._version import __version__
from kmervae.errors import KmervaeError
from kmervae.io.atomic import remove_path
from kmervae.model.checkpoint import (
    check_resume_config,
    check_resume_data,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from kmervae.model.config import (
    COMPILE_MODES,
    PLACEMENTS,
    PRECISIONS,
    RuntimeOptions,
    TrainConfig,
    VAEConfig,
    check_run_folder,
    read_run_record,
)
from kmervae.model.data import (
    ResidentBatches,
    TrainingData,
    make_batches,
    open_training_data,
    read_rows,
)
from kmervae.model.device import resolve_device
from kmervae.model.epoch import Progress, Session, train_epoch
from kmervae.model.files import save_model
from kmervae.model.run_folder import RunFiles, RunHistory, resume_from_one, write_text
from kmervae.model.schedules import PlateauState
from kmervae.model.vae import VAE
from kmervae.viz.curves import plot_training_curves

log = logging.getLogger(__name__)


@dataclass
class TrainSummary:
    """What a call of :func:`train_vae` did; epochs are counted from 1."""

    run_dir: Path
    epochs_run: int
    last_epoch: int
    best_epoch: int | None
    best_val_loss: float
    stopped_early: bool
    model_dir: Path


def check_runtime(runtime: RuntimeOptions) -> tuple[torch.device, bool]:
    """Check the runtime options against each other and the device; returns the device and
    whether to train under bf16 autocast."""
    for value, allowed, name in (
        (runtime.precision, PRECISIONS, "precision"),
        (runtime.placement, PLACEMENTS, "placement"),
        (runtime.compile, COMPILE_MODES, "compile"),
    ):
        if value not in allowed:
            raise KmervaeError(f"{name} {value}: unknown (one of {', '.join(allowed)})")
    if runtime.threads is not None and not 0 <= runtime.threads <= 4096:
        raise KmervaeError(f"threads must be in [0, 4096], got {runtime.threads}")
    if runtime.memory_mb < 1:
        raise KmervaeError(f"memory_mb must be >= 1, got {runtime.memory_mb}")
    device = resolve_device(runtime.device)
    bf16_ok = device.type == "cpu" or (
        device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
    )
    if runtime.precision == "bf16" and not bf16_ok:
        raise KmervaeError(f"precision bf16: not supported on {device}; use fp32")
    if runtime.compile == "reduce-overhead" and device.type != "cuda":
        raise KmervaeError(
            f"compile reduce-overhead uses CUDA graphs and needs a CUDA device, not {device}"
        )
    use_bf16 = runtime.precision == "bf16" or (
        runtime.precision == "auto" and device.type == "cuda" and bf16_ok
    )
    return device, use_bf16


# -- the steps of a run ----------------------------------------------------------------------


def train_vae(
    dataset: str | Path,
    run_dir: str | Path,
    model_config: VAEConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    validation: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    runtime: RuntimeOptions | None = None,
    provenance: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
) -> TrainSummary:
    """Train a VAE on a profile dataset; see the module docstring for the run directory.

    The steps: check the request and open the data (:func:`_check_request`, nothing is
    written), build the model and optimiser (:func:`_build_model`), start the run or resume
    it (:func:`_start_run`, :func:`_resume_run`), load the batches (:func:`_load_batches`),
    run the epochs (:func:`_run_epochs`) and publish the model (:func:`_finish`).

    ``on_epoch`` is called with each epoch's history line. ``on_run_dir`` is called with the
    folder the run is written in (for a new run, the temporary folder that becomes
    ``run_dir``) before anything is written there. ``overwrite``: replace an earlier run in
    ``run_dir``, once the new run's first checkpoint has landed. A failure after that keeps
    the checkpoints and says that ``resume`` continues.
    """
    model_config = model_config or VAEConfig()
    cfg = train_config or TrainConfig()
    runtime = runtime or RuntimeOptions()
    run_dir = Path(run_dir)
    check_run_folder(run_dir, resume=resume, overwrite=overwrite)
    plan = _check_request(dataset, validation, run_dir, model_config, cfg, runtime, resume)
    files = RunFiles(run_dir, resume)
    if plan.ckpt is not None:
        files.saved_epoch = int(plan.ckpt["epoch"])
    try:
        if on_run_dir is not None:
            on_run_dir(files.root)
        model, optimizer = _build_model(model_config, cfg, runtime, plan.device)
        history = files.open_history()
        if plan.ckpt is None:
            progress = _start_run(files, history, plan, model_config, cfg, provenance)
        else:
            progress = _resume_run(files, history, plan, model, optimizer, provenance)
        session = _load_batches(plan, files, history, model, optimizer, model_config, cfg, runtime)
        first_epoch = progress.epoch + 1
        _run_epochs(session, progress, on_epoch)
        return _finish(session, progress, first_epoch, provenance)
    except BaseException as exc:
        _account_for_failure(exc, files)
        raise


@dataclass
class _Plan:
    """A checked request: the opened data, the device, and the checkpoint to resume from."""

    data: TrainingData
    device: torch.device
    use_bf16: bool
    ckpt: dict[str, Any] | None


def _check_request(
    dataset: str | Path,
    validation: str | Path | None,
    run_dir: Path,
    model_config: VAEConfig,
    cfg: TrainConfig,
    runtime: RuntimeOptions,
    resume: bool,
) -> _Plan:
    """Check the inputs and open the data: every check that can fail, cheapest first (the
    runtime and device, the checkpoint and its configuration, the data and, on resume, that
    they are the run's). Writes nothing."""
    device, use_bf16 = check_runtime(runtime)
    ckpt = None
    if resume:
        last = run_dir / "checkpoints" / "last.pt"
        ckpt = load_checkpoint(last)
        check_resume_config(ckpt, model_config, cfg, last)
    data = open_training_data(
        dataset,
        validation,
        model_config.ks,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
    )
    if ckpt is not None:
        check_resume_data(ckpt.get("dataset", {}), data.info, run_dir)
    return _Plan(data, device, use_bf16, ckpt)


def _account_for_failure(exc: BaseException, files: RunFiles) -> None:
    """Clean up after a run that failed or was stopped, before ``exc`` propagates: a run not
    yet in place leaves nothing behind; one in place keeps its checkpoints, which a
    KmervaeError or OSError then names (as a KmervaeError, raised from here)."""
    if not files.placed:
        remove_path(files.root)
        return
    kept = (
        f"{files.final} keeps the checkpoint of epoch {files.saved_epoch}; resume continues the run"
        if files.saved_epoch is not None
        else ""
    )
    if isinstance(exc, KeyboardInterrupt):
        log.info("training stopped; %s", kept)
    elif isinstance(exc, KmervaeError | OSError) and kept:
        raise KmervaeError(f"{exc} ({kept})") from None


def _build_model(
    model_config: VAEConfig, cfg: TrainConfig, runtime: RuntimeOptions, device: torch.device
) -> tuple[VAE, torch.optim.Optimizer]:
    """Set torch's threads, seeds and (on the CPU) deterministic algorithms, then build the
    model, with its seeded initial weights, and its Adam optimiser on ``device``."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model = VAE(model_config).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    return model, optimizer


def _start_run(
    files: RunFiles,
    history: RunHistory,
    plan: _Plan,
    model_config: VAEConfig,
    cfg: TrainConfig,
    provenance: dict[str, Any] | None,
) -> Progress:
    """Start a new run: an empty history and a fresh ``run.json``."""
    history.load(upto_epoch=None)
    split = plan.data.split
    run_info = {
        "format": "kmervae-run",
        "kmervae_version": __version__,
        "model_config": model_config.to_json(),
        "train_config": cfg.to_json(),
        "dataset": plan.data.info,
        "split": {
            "train": len(split.train),
            "validation": len(split.validation),
            "seed": cfg.seed,
            "val_fraction": cfg.val_fraction,
        },
        "device": str(plan.device),
        "threads": torch.get_num_threads(),  # CPU results depend on it (BatchNorm)
        "provenance": provenance or {},
    }
    write_text(files.root / "run.json", json.dumps(run_info, indent=2) + "\n")
    return Progress(PlateauState(cfg.lr))


def _resume_run(
    files: RunFiles,
    history: RunHistory,
    plan: _Plan,
    model: VAE,
    optimizer: torch.optim.Optimizer,
    provenance: dict[str, Any] | None,
) -> Progress:
    """Resume from the checkpoint: weights, optimiser, schedule and RNG state; the history
    up to the checkpoint's epoch, with a resume line; the resume added to ``run.json``."""
    ckpt = plan.ckpt
    assert ckpt is not None  # a resume has a checkpoint
    model.load_state_dict(ckpt["model_state"])
    optimizer.load_state_dict(ckpt["optimizer_state"])
    progress = Progress(
        PlateauState.from_json(ckpt["plateau"]),
        epoch=int(ckpt["epoch"]),
        best_epoch=ckpt.get("best_epoch"),
        best_loss=float(ckpt.get("best_val_loss", math.inf)),
        since_best=int(ckpt.get("since_best", 0)),
    )
    restore_rng_state(ckpt["rng"])
    first = progress.epoch + 1
    run_info = read_run_record(files.root) if (files.root / "run.json").exists() else {}
    resumes = [resume_from_one(r) for r in run_info.get("resumes", [])]
    resumes.append(
        {
            "from_epoch": first,
            "device": str(plan.device),
            "threads": torch.get_num_threads(),
            "dataset": plan.data.info,
            "provenance": provenance or {},
        }
    )
    run_info["resumes"] = resumes
    history.load(upto_epoch=progress.epoch)
    history.append(
        {
            "event": "resume",
            "from_epoch": first,
            "time": time.time(),
            "command": (provenance or {}).get("command"),
        }
    )
    log.info("resuming %s at epoch %d", files.root, first)
    write_text(files.root / "run.json", json.dumps(run_info, indent=2) + "\n")
    return progress


def _load_batches(
    plan: _Plan,
    files: RunFiles,
    history: RunHistory,
    model: VAE,
    optimizer: torch.optim.Optimizer,
    model_config: VAEConfig,
    cfg: TrainConfig,
    runtime: RuntimeOptions,
) -> Session:
    """Place the data (resident or streamed, within ``runtime.memory_mb``), draw the fixed
    samples of training and validation rows, compile the model if asked, and log the run."""
    data, device = plan.data, plan.device
    ds, split = data.dataset, data.split
    budget = runtime.memory_mb << 20
    train_batches = make_batches(
        ds, data.columns, split.train, device, runtime.placement, budget * 9 // 10
    )
    val_batches = make_batches(
        data.validation,
        data.val_columns,
        split.validation,
        device,
        runtime.placement,
        budget // 10,
    )
    rng = np.random.default_rng([cfg.seed, 1])
    eval_rows = np.sort(
        rng.choice(split.train, min(cfg.eval_train_rows, len(split.train)), replace=False)
    )
    train_eval = torch.from_numpy(read_rows(ds, data.columns, eval_rows)).to(device)
    pool_rows = np.sort(
        rng.choice(split.validation, min(cfg.fidelity_pool, len(split.validation)), replace=False)
    )
    fidelity_pool = torch.from_numpy(read_rows(data.validation, data.val_columns, pool_rows)).to(
        device
    )
    step_model: torch.nn.Module = model
    if runtime.compile != "none":
        step_model = torch.compile(
            model,
            mode=None
            if runtime.compile == "default"  # type: ignore[assignment]
            else runtime.compile,
        )
    log.info(
        "training %s on %s: %d train / %d validation rows, batch %d, %s, device %s%s, data %s",
        "x".join(map(str, (model_config.n_features, *model_config.hidden, model_config.latent))),
        ds.path,
        len(split.train),
        len(split.validation),
        cfg.batch_size,
        cfg.schedule,
        device,
        " bf16" if plan.use_bf16 else "",
        "resident" if isinstance(train_batches, ResidentBatches) else "streamed from disk",
    )
    return Session(
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        train_batches=train_batches,
        val_batches=val_batches,
        train_eval=train_eval,
        fidelity_pool=fidelity_pool,
        # larger evaluation batches pay on accelerators; on the CPU they only cost memory
        eval_batch=cfg.batch_size * 4 if device.type != "cpu" else cfg.batch_size,
        device=device,
        use_bf16=plan.use_bf16,
        model_config=model_config,
        cfg=cfg,
        dataset_record=data.info,
        files=files,
        history=history,
    )


def _run_epochs(
    session: Session, progress: Progress, on_epoch: Callable[[dict[str, Any]], None] | None
) -> None:
    """Run the epochs after ``progress.epoch`` up to ``cfg.epochs``: train, evaluate, save
    the checkpoints and the history line, log; stop early when asked."""
    cfg = session.cfg
    first = progress.epoch + 1
    for epoch in range(first, cfg.epochs + 1):
        started = time.perf_counter()
        record, improved = train_epoch(session, progress, epoch, started)
        _save_epoch(session, progress, record, improved, replot=epoch in (first, cfg.epochs))
        _log_epoch(session, record, improved)
        if on_epoch is not None:
            on_epoch(record)
        if (
            cfg.early_stopping
            and epoch > cfg.kl_warmup
            and progress.since_best >= cfg.early_stopping
        ):
            log.info("early stop: no validation gain in %d epochs", cfg.early_stopping)
            progress.stopped_early = True
            plot_training_curves(session.history.rows, session.files.root / "training_curves.png")
            break


def _save_epoch(
    session: Session,
    progress: Progress,
    record: dict[str, Any],
    improved: bool,
    replot: bool,
) -> None:
    """Append the epoch's history line, write the checkpoints (``best.pt`` first when the
    epoch is the best), move a new run into place, and redraw the curves (always when
    ``replot``, else at most every 30 s)."""
    files, history = session.files, session.history
    payload = {
        "model_config": session.model_config.to_json(),
        "train_config": session.cfg.to_json(),
        "model_state": session.model.state_dict(),
        "optimizer_state": session.optimizer.state_dict(),
        "plateau": progress.plateau.to_json(),
        "epoch": progress.epoch,
        "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_loss,
        "since_best": progress.since_best,
        "dataset": session.dataset_record,
        "metrics": {k: v for k, v in record.items() if not isinstance(v, dict)},
    }
    history.append(record)
    if improved:
        save_checkpoint(files.checkpoints / "best.pt", payload)
    save_checkpoint(files.checkpoints / "last.pt", payload)
    files.saved_epoch = progress.epoch
    files.place()  # a new run replaces an earlier one only now
    history.path = files.root / "history.jsonl"
    if replot or time.monotonic() - session.last_plot > 30:
        plot_training_curves(history.rows, files.root / "training_curves.png")
        session.last_plot = time.monotonic()


def _log_epoch(session: Session, record: dict[str, Any], improved: bool) -> None:
    """The one log line of an epoch."""
    log.info(
        "epoch %d/%d  train %.4g (eval mode %.4g)  val %.4g  recon %.4g  KL %.4g  "
        "lr %.3g  %.1f s  %.0f samples/s%s%s",
        record["epoch"],
        session.cfg.epochs,
        record["train_loss"],
        record["train_loss_eval"],
        record["val_loss"],
        record["val_recon"],
        record["val_kl"],
        record["lr"],
        record["seconds"],
        record["samples_per_s"],
        f"  fidelity {record['fidelity_spearman']:.3f}" if "fidelity_spearman" in record else "",
        "  *best*" if improved else "",
    )


def _finish(
    session: Session, progress: Progress, first_epoch: int, provenance: dict[str, Any] | None
) -> TrainSummary:
    """Move the run into place (if no epoch did), publish the model folder and sum up."""
    files = session.files
    files.place()
    model_dir = _publish(
        files.root,
        files.checkpoints,
        session.model_config,
        session.cfg,
        session.dataset_record,
        session.history.rows,
        provenance,
    )
    return TrainSummary(
        files.root,
        progress.epoch + 1 - first_epoch,
        progress.epoch,
        progress.best_epoch,
        progress.best_loss,
        progress.stopped_early,
        model_dir,
    )


def _publish(
    run_dir: Path,
    ckpt_dir: Path,
    config: VAEConfig,
    cfg: TrainConfig,
    ds_info: dict[str, Any],
    history: list[dict[str, Any]],
    provenance: dict[str, Any] | None,
) -> Path:
    """Write the best (else last) weights as a model folder with its card."""
    source = ckpt_dir / "best.pt" if (ckpt_dir / "best.pt").exists() else ckpt_dir / "last.pt"
    ckpt = load_checkpoint(source)
    model = VAE(config)
    model.load_state_dict(ckpt["model_state"])
    epochs = [h for h in history if "epoch" in h]
    chosen = next((h for h in epochs if h["epoch"] == ckpt["epoch"]), {})
    fidelity = [h for h in epochs if "fidelity_spearman" in h]
    card = {
        "name": run_dir.name,
        "training_data": {
            **{k: v for k, v in ds_info.items() if k != "validation"},
            # a separate validation dataset, or None: a seeded split of the training data
            # (evaluate then knows which rows of it were never trained on)
            "validation": ds_info.get("validation"),
        },
        "metrics": {
            "epoch": int(ckpt["epoch"]),
            "val_loss": chosen.get("val_loss"),
            "val_recon_mse_x_F": chosen.get("val_recon"),
            "val_mse_per_k": chosen.get("val_mse_per_k"),
            "fidelity_spearman_latest": fidelity[-1]["fidelity_spearman"] if fidelity else None,
            "fidelity_pool": fidelity[-1]["fidelity_pool"] if fidelity else None,
            "chosen_from": source.name,
        },
        "training": cfg.to_json(),
        "provenance": provenance or {},
    }
    return save_model(model, run_dir / "model", card=card, overwrite=True)
